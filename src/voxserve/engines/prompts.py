"""Voices that are prompts: a recording and what it says (GLM-TTS, CosyVoice 2 and 3).

Such models have no preset speakers: every request carries the voice as a
recording and its transcript. A configured voice's recording is converted
once, when the engine loads, to 24 kHz mono 16-bit WAV (what GLM-TTS's front
end reads, and what CosyVoice resamples from; a cloned library voice's
reference is already that), and kept under the engine's own directory by
content hash.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import av
import numpy as np
from pydantic import Discriminator, Field, Tag, field_validator

from voxserve.engine_settings import EngineSettings
from voxserve.engines.kind import BuildContext, EngineOptions
from voxserve.values import SegmentRequest

PROMPT_RATE = 24000


class PromptVoice(EngineOptions):
    """A voice is a prompt: a recording and what it says (the model reads both)."""

    audio: Path = Field(description="the recording (any format FFmpeg reads; 3-15 s)")
    text: str = Field(min_length=1, description="what the recording says (prompt_text)")

    @field_validator("audio")
    @classmethod
    def _on_this_machine(cls, audio: Path) -> Path:
        """voxserve reads the recording to send it with each request: a missing one is a settings
        mistake, said when they load, not an engine that fails to load later."""
        if not audio.is_file():
            raise ValueError(f"no such file: {audio} (voxserve reads it and sends it with each request)")
        return audio


def _shape(voices: object) -> str:
    return "ids" if isinstance(voices, list) else "prompts"


#: A server's own voice ids, or voices as prompts (a recording and what it says), told apart by
#: shape: a mistake in a prompt is said alone, not beside "Input should be a valid list".
IdsOrPrompts = Annotated[
    Annotated[list[str], Field(min_length=1), Tag("ids")]
    | Annotated[dict[str, PromptVoice], Field(min_length=1), Tag("prompts")],
    Discriminator(_shape),
]


@dataclass(frozen=True)
class Prompt:
    audio: Path
    text: str


def convert_prompt(source: Path, target: Path) -> None:
    """Any audio file → 24 kHz mono s16 WAV (what GLM-TTS expects of its prompt)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=PROMPT_RATE)
    with av.open(str(source), mode="r") as container:
        frames = [out for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    frames += resampler.resample(None)
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype("<i2")
    partial = target.with_suffix(".part")
    with av.open(str(partial), mode="w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=PROMPT_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PROMPT_RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    partial.replace(target)


def _converted(source: Path, directory: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = directory / f"{digest}.wav"
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        convert_prompt(source, target)
    return target


#: Recordings kept in memory, the voices used most lately (a voice goes with every segment).
KEPT_RECORDINGS = 32


class Prompts:
    """Each voice's converted recording and text; a cloned voice's own reference and transcript."""

    def __init__(self, voices: Mapping[str, PromptVoice], directory: Path) -> None:
        self._voices = dict(voices)
        self._directory = directory
        self._prompts: dict[str, Prompt] = {}
        self._recordings: OrderedDict[Path, bytes] = OrderedDict()

    async def load(self) -> None:
        for voice, prompt in self._voices.items():
            audio = await asyncio.to_thread(_converted, prompt.audio, self._directory)
            self._prompts[voice] = Prompt(audio, prompt.text)

    def of(self, request: SegmentRequest) -> Prompt:
        reference = request.reference
        if reference is not None:  # planning refused clones without a transcript
            return Prompt(reference.path, reference.transcript or "")
        return self._prompts[request.voice]

    async def read(self, prompt: Prompt) -> None:
        """Have the recording's bytes at hand (read in a thread) before a request is built with them."""
        if prompt.audio not in self._recordings:
            self._keep(prompt.audio, await asyncio.to_thread(prompt.audio.read_bytes))

    def recording(self, prompt: Prompt) -> bytes:
        """The recording's bytes, as :meth:`read` kept them."""
        data = self._recordings.get(prompt.audio)
        if data is None:  # not read first: read here, once
            data = prompt.audio.read_bytes()
        self._keep(prompt.audio, data)
        return data

    def _keep(self, path: Path, data: bytes) -> None:
        self._recordings[path] = data
        self._recordings.move_to_end(path)
        while len(self._recordings) > KEPT_RECORDINGS:
            self._recordings.popitem(last=False)


def configured_prompts(
    voices: Sequence[str] | Mapping[str, PromptVoice], context: BuildContext, config: EngineSettings
) -> Prompts:
    """An engine table's prompt voices, converted under the engine's own directory (none where its
    voices are ids the server keeps, such as CosyVoice 1's speakers or fish-speech's references)."""
    return Prompts(voices if isinstance(voices, Mapping) else {}, context.work_dir(config) / "prompts")
