"""GLM-TTS run as a subprocess, with the command line that hand-built queues use::

    python glmtts_inference.py --input_text … --prompt_audio … --output_path … --sample_rate 24000 --seed 42

Safety and resources:

- an argument list, never a shell; every value is bound with ``--flag=value``
  so text that starts with ``--`` cannot become an option;
- output files only under the engine's work directory inside the data dir,
  named by voxserve, removed once read;
- each voice's prompt audio is converted once to 24 kHz mono 16-bit WAV;
- a hard timeout, and the process is killed when the request is cancelled;
- one run at a time by default (one GPU), the tail of stderr in any error;
- with ``gpus = ["0", "1", ...]`` the kind builds one instance per GPU
  (``CUDA_VISIBLE_DEVICES`` set for its runs) and pools them, so requests
  spread over the GPUs, each still serial.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Literal

import av
import numpy as np
from pydantic import Field

from voxserve.audio.decode import decode_audio
from voxserve.config import EngineSettings
from voxserve.engines.base import PCM, Capabilities, EngineBase, SegmentRequest, voices_named
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions, pooled
from voxserve.engines.process import run_program
from voxserve.errors import EngineUnavailable
from voxserve.routing import FixedLimit, Pool, Role

PROMPT_RATE = 24000


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


class GlmTtsOptions(EngineOptions):
    command: list[str] = Field(min_length=1, description="the program and its first arguments")
    voices: dict[str, Path] = Field(min_length=1, description="voice id → prompt audio file")
    sample_rate: Literal[24000, 32000] = 24000
    timeout: float = Field(default=300.0, gt=0, description="seconds one run may take")
    languages: list[str] = Field(default_factory=lambda: ["zh", "en"])
    gpus: list[str | int] = Field(default_factory=list, description="one serial instance per GPU, pooled")


class GlmTtsEngine(EngineBase):
    """One GLM-TTS command line; voices are prompt audio files."""

    def __init__(
        self,
        name: str,
        options: GlmTtsOptions,
        work_dir: Path,
        max_concurrency: int = 1,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            name,
            Capabilities(
                languages=frozenset(options.languages),
                voices=voices_named(name, options.voices, options.languages),
                sample_rate=options.sample_rate,
                seeded=True,
                cloning=True,  # any voice is prompt audio; a library voice's reference is one too
            ),
        )
        self._command = options.command
        self._environment = {**os.environ, **environment} if environment else None
        self._sources = dict(options.voices)
        self._prompts: dict[str, Path] = {}
        self._work = work_dir
        self._timeout = options.timeout
        self._slots = asyncio.Semaphore(max_concurrency)

    async def load(self) -> None:
        """Convert every voice's prompt audio once (cached by content hash)."""
        (self._work / "prompts").mkdir(parents=True, exist_ok=True)
        (self._work / "out").mkdir(parents=True, exist_ok=True)
        for voice, source in self._sources.items():
            digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
            target = self._work / "prompts" / f"{digest}.wav"
            if not target.exists():
                await asyncio.to_thread(convert_prompt, source, target)
            self._prompts[voice] = target
        await super().load()

    async def health(self, timeout: float = 2.0) -> bool:
        """Alive while the command's program can still be found (a GPU's runs are separate processes)."""
        program = self._command[0]
        return self._ready and (shutil.which(program) is not None or Path(program).is_file())

    def arguments(self, request: SegmentRequest, output: Path) -> list[str]:
        return [
            *self._command,
            f"--input_text={request.text}",
            f"--prompt_audio={self._prompt(request)}",
            f"--output_path={output}",
            f"--sample_rate={self._capabilities.sample_rate}",
            f"--seed={request.seed if request.seed is not None else 42}",
        ]

    def _prompt(self, request: SegmentRequest) -> Path:
        """A cloned voice's reference is already 24 kHz mono s16, what GLM-TTS wants; else the voice's."""
        return request.reference.path if request.reference else self._prompts[request.voice]

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        output = self._work / "out" / f"{uuid.uuid4().hex}.wav"
        try:
            async with self._slots:
                await run_program(
                    self.name,
                    self.arguments(request, output),
                    timeout=self._timeout,
                    environment=self._environment,
                )
            if not output.exists():
                raise EngineUnavailable(f"engine {self.name!r} exited with 0 but wrote no audio")
            audio, _ = await asyncio.to_thread(decode_audio, output, self.capabilities.sample_rate)
        finally:
            output.unlink(missing_ok=True)
        yield audio


def _build(config: EngineSettings, options: GlmTtsOptions, context: BuildContext) -> GlmTtsEngine | Pool:
    """One command line, or with ``gpus`` one per GPU in a pool (each serial unless ``max_concurrency``)."""
    work_dir = context.work_dir(config)
    limit = config.fixed_concurrency or 1
    if not options.gpus:
        return GlmTtsEngine(config.name, options, work_dir, limit)
    members = [
        (
            GlmTtsEngine(config.name, options, work_dir, limit, {"CUDA_VISIBLE_DEVICES": str(gpu)}),
            f"gpu:{gpu}",
            Role.PRIMARY,
        )
        for gpu in options.gpus
    ]
    return pooled(config, members, lambda: FixedLimit(limit))


KIND = EngineKind("glmtts", GlmTtsOptions, _build, "GLM-TTS's command line, one serial run per GPU")
