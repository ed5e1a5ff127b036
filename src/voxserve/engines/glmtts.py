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
- with ``gpus = ["0", "1", ...]`` the registry builds one instance per GPU
  (``CUDA_VISIBLE_DEVICES`` set for its runs) and pools them, so requests
  spread over the GPUs, each still serial.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import av
import numpy as np

from voxserve.audio.decode import decode_audio
from voxserve.engines.base import PCM, Capabilities, SegmentRequest, voices_named
from voxserve.engines.remote import OUT_OF_MEMORY
from voxserve.errors import EngineOverloaded, EngineTimeout, EngineUnavailable, UnsupportedValue

PROMPT_RATE = 24000
STDERR_TAIL = 400


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


class GlmTtsEngine:
    """One GLM-TTS command line; voices are prompt audio files."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        voices: Mapping[str, str],
        work_dir: Path,
        sample_rate: int = 24000,
        timeout: float = 300.0,
        max_concurrency: int = 1,
        languages: Sequence[str] = ("zh", "en"),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if sample_rate not in (24000, 32000):
            raise UnsupportedValue(
                "glmtts sample_rate must be 24000 or 32000", param="engines.options.sample_rate"
            )
        if not command or not voices:
            raise UnsupportedValue("glmtts needs a command and at least one voice", param="engines.options")
        self.name = name
        self._command = list(command)
        self._environment = {**os.environ, **environment} if environment else None
        self._sources = {voice: Path(path) for voice, path in voices.items()}
        self._prompts: dict[str, Path] = {}
        self._work = work_dir
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self._ready = False
        self._capabilities = Capabilities(
            languages=frozenset(languages),
            voices=voices_named(name, voices, languages),
            sample_rate=sample_rate,
            seeded=True,
            cloning=True,  # any voice is prompt audio; a library voice's reference is one too
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def ready(self) -> bool:
        return self._ready

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
        self._ready = True

    async def close(self) -> None:
        self._ready = False

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
        async with self._slots:
            process = await asyncio.create_subprocess_exec(
                *self.arguments(request, output),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment,
            )
            try:
                _, stderr = await asyncio.wait_for(process.communicate(), self._timeout)
            except TimeoutError as exc:
                raise EngineTimeout(
                    f"engine {self.name!r} ran longer than {self._timeout:.0f} s; killed"
                ) from exc
            finally:
                if process.returncode is None:  # timed out or cancelled: never leave it running
                    process.kill()
                    await process.wait()
        try:
            if process.returncode != 0 or not output.exists():
                tail = stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:] or "(no output on stderr)"
                message = f"engine {self.name!r} exited with {process.returncode}: {tail}"
                raise EngineOverloaded(message) if OUT_OF_MEMORY.search(tail) else EngineUnavailable(message)
            audio, _ = await asyncio.to_thread(decode_audio, output)
        finally:
            output.unlink(missing_ok=True)
        yield audio
