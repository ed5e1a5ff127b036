"""Any speech program with a command line, as an engine (espeak-ng, piper, say, a model's script).

The ``command`` is an argument list with placeholders, filled per segment:
``{text}``, ``{language}`` (the program's own tag for the segment's
language), ``{voice}`` (the voice's value), ``{output}`` (a file it must
write, when ``output = "file"``), ``{seed}``, and ``{reference}``: a cloned
voice's reference audio (a 24 kHz mono 16-bit WAV) when the request clones
one, else the voice's value. A command with ``{reference}`` can clone (a
wrapper script that takes ``--prompt_audio``, say). Confinement:

- never a shell; the text goes on stdin by default, and where it is an
  argument, one that is only ``{text}`` must follow ``--`` (or be bound as
  ``--text={text}``), so text that starts with ``-`` cannot become an option;
- outputs only under the engine's own directory in the data dir, named by
  voxserve and removed once read; stdout read up to ``max_output_bytes``;
- a hard ``timeout``, the process killed on timeout or when the request is
  cancelled; at most ``max_concurrency`` runs at once (default: the cores).

Languages are a table (voxserve's code → the program's tag), or found at load
by running ``discover_languages.command`` and taking ``pattern``'s first group
from each line: with espeak-ng that is every language it knows.
"""

from __future__ import annotations

import asyncio
import re
import string
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import EngineBase
from voxserve.engines.calls import CallStats
from voxserve.engines.decode import decode_audio
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions
from voxserve.engines.process import run_program
from voxserve.errors import EngineError, EngineUnavailable
from voxserve.text.language import language_code
from voxserve.values import PCM, Capabilities, SegmentRequest, voices_named

PLACEHOLDERS = frozenset({"text", "language", "voice", "output", "seed", "reference"})


def placeholders(argument: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(argument) if name is not None}


class LanguageDiscovery(EngineOptions):
    """A command that lists the program's languages, and where each line names one."""

    command: list[str] = Field(min_length=1)
    pattern: str = Field(description="a regular expression; its first group is the program's language tag")
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, value: str) -> str:
        if re.compile(value).groups < 1:
            raise ValueError("the pattern needs a group around the language tag")
        return value


class CommandOptions(EngineOptions):
    command: list[str] = Field(min_length=1, description="the program and its arguments, with placeholders")
    text_via: Literal["stdin", "argument"] = "stdin"
    output: Literal["stdout", "file"] = Field(default="stdout", description="where the program writes audio")
    languages: dict[str, str] = Field(default_factory=dict, description="voxserve code → the program's tag")
    discover_languages: LanguageDiscovery | None = None
    voices: dict[str, str] = Field(default={"default": ""}, min_length=1, description="voice id → {voice}")
    sample_rate: int = Field(default=22050, gt=0, description="the rate voxserve delivers (others resampled)")
    timeout: float = Field(default=60.0, gt=0, description="seconds one run may take")
    max_segment_chars: int = Field(default=400, ge=20)
    max_output_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, command: list[str]) -> list[str]:
        for argument in command:
            try:
                unknown = placeholders(argument) - PLACEHOLDERS
            except ValueError as exc:  # an unmatched brace
                raise ValueError(f"{argument!r}: {exc}") from None
            if unknown:
                raise ValueError(
                    f"{argument!r} names {', '.join(sorted(unknown))}; "
                    f"placeholders are {', '.join(sorted(PLACEHOLDERS))}"
                )
        return command

    @model_validator(mode="after")
    def _confined(self) -> CommandOptions:
        used = set().union(*(placeholders(argument) for argument in self.command))
        if self.text_via == "argument":
            if "text" not in used:
                raise ValueError("text_via = 'argument' needs {text} in the command")
            for before, argument in zip(["", *self.command], self.command, strict=False):
                if argument == "{text}" and before != "--":
                    raise ValueError(
                        "an argument that is only {text} must follow '--' (or bind it: --text={text})"
                    )
        elif "text" in used:
            raise ValueError("{text} is in the command but text_via is 'stdin'; say text_via = 'argument'")
        if (self.output == "file") != ("output" in used):
            raise ValueError("output = 'file' and an {output} argument go together")
        if not self.languages and self.discover_languages is None:
            raise ValueError("give languages, discover_languages, or both")
        return self


def discovered(lines: Iterable[str], pattern: str) -> dict[str, str]:
    """voxserve code → the program's tag: a tag equal to the code wins, else the shortest, else the first."""
    found: dict[str, str] = {}
    matcher = re.compile(pattern)
    for line in lines:
        match = matcher.search(line)
        if not match:
            continue
        tag = match.group(1)
        code = language_code(tag)
        best = found.get(code)
        if best is None or (best != code and (tag == code or len(tag) < len(best))):
            found[code] = tag
    return found


class CommandEngine(EngineBase):
    """One speech program, run once per segment."""

    def __init__(self, name: str, options: CommandOptions, work_dir: Path, max_concurrency: int) -> None:
        super().__init__(name, self._capabilities_for(name, options, options.languages))
        self._options = options
        self._languages = dict(options.languages)
        self._work = work_dir
        self._limit = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._running = 0
        self.calls = CallStats()

    @staticmethod
    def _capabilities_for(name: str, options: CommandOptions, languages: Mapping[str, str]) -> Capabilities:
        codes = sorted(languages)
        used = set().union(*(placeholders(argument) for argument in options.command))
        return Capabilities(
            languages=frozenset(codes),
            voices=voices_named(name, options.voices, codes),
            sample_rate=options.sample_rate,
            max_segment_chars=options.max_segment_chars,
            seeded="seed" in used,
            cloning="reference" in used,
        )

    async def load(self) -> None:
        """Find the program's languages (the table given wins over what it lists)."""
        discovery = self._options.discover_languages
        if discovery is not None:
            listed = await run_program(
                self.name, discovery.command, timeout=discovery.timeout, capture_stdout=True
            )
            lines = listed.decode("utf-8", "replace").splitlines()
            self._languages = {**discovered(lines, discovery.pattern), **self._options.languages}
            if not self._languages:
                raise EngineUnavailable(f"engine {self.name!r}: {discovery.command[0]} listed no languages")
            self._capabilities = self._capabilities_for(self.name, self._options, self._languages)
        if self._options.output == "file":
            (self._work / "out").mkdir(parents=True, exist_ok=True)
        await super().load()

    def arguments(self, request: SegmentRequest, output: Path | None) -> list[str]:
        voice = self._options.voices[request.voice]
        values = {
            "text": request.text,
            "language": self._languages[request.language],
            "voice": voice,
            "output": str(output or ""),
            "seed": str(request.seed if request.seed is not None else 0),
            "reference": str(request.reference.path) if request.reference else voice,
        }
        return [argument.format_map(values) for argument in self._options.command]

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        options = self._options
        output = self._work / "out" / f"{uuid.uuid4().hex}.wav" if options.output == "file" else None
        try:
            async with self._slots:
                started, self._running = time.perf_counter(), self._running + 1
                try:
                    written = await run_program(
                        self.name,
                        self.arguments(request, output),
                        timeout=options.timeout,
                        stdin=request.text.encode() if options.text_via == "stdin" else None,
                        capture_stdout=output is None,
                        max_stdout=options.max_output_bytes,
                    )
                finally:
                    self._running -= 1
            if output is not None and not output.exists():
                raise EngineUnavailable(f"engine {self.name!r} exited with 0 but wrote no audio")
            audio = await asyncio.to_thread(self._decode, output or written)
        except EngineError:
            self.calls.failed()
            raise
        finally:
            if output is not None:
                output.unlink(missing_ok=True)
        self.calls.succeeded(time.perf_counter() - started)
        yield audio

    def snapshot(self) -> list[dict[str, object]]:
        """The program as the one instance ``/v1/engines`` and ``/metrics`` show."""
        return [
            self.calls.view(
                "embedded", "primary", healthy=self.ready, in_flight=self._running, limit=self._limit
            )
        ]

    def _decode(self, source: bytes | Path) -> PCM:
        if isinstance(source, bytes) and not source:
            return np.zeros(0, np.float32)
        try:
            audio, _ = decode_audio(source, self._options.sample_rate)
        except Exception as exc:  # FFmpeg's errors for whatever the program wrote
            raise EngineUnavailable(f"engine {self.name!r} wrote no audio FFmpeg can read: {exc}") from exc
        return audio


def _build(config: EngineSettings, options: CommandOptions, context: BuildContext) -> CommandEngine:
    return CommandEngine(
        config.name, options, context.work_dir(config), config.fixed_concurrency or context.cores
    )


KIND = EngineKind(
    "command",
    CommandOptions,
    _build,
    "any speech program with a command line (espeak-ng, ...)",
    loads_quickly=True,
)
