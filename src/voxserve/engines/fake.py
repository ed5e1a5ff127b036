"""A small deterministic engine for tests of everything above the engines.

It speaks a tone whose pitch depends on the text, one short burst per word,
so its output has speech-like energy and a duration proportional to the text.
It can be told to be slow (every segment, or one with a given word for a
long time), to fail on a given segment (every time, or only the first few
times), to reject a segment for good, or to return nothing, which is how
tests reach error paths without a real model.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import EngineBase
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions
from voxserve.errors import EngineError, EngineRejected
from voxserve.values import PCM, Capabilities, SegmentRequest, VoiceInfo, WordTime


@dataclass
class FakeEngine(EngineBase):
    """Deterministic tone engine implementing the Engine protocol (its fields are its options)."""

    name: str = "fake"
    sample_rate: int = 16000
    seconds_per_word: float = 0.2
    delay: float = 0.0
    fail_on: str | None = None
    fail_times: int | None = None  # None: fail_on fails every time
    reject_on: str | None = None
    empty_on: str | None = None
    slow_on: str | None = None  # a segment with this word waits slow_seconds before its audio
    slow_seconds: float = 0.0
    languages: frozenset[str] = frozenset({"en", "zh", "ja"})
    emotions: frozenset[str] = frozenset()
    cloning: bool = False  # a reference shifts the tone, so each cloned voice sounds its own
    voices: tuple[str, ...] = ("tone",)  # the first is the default; all sound the same
    pace: float | None = None  # seconds per character it says it takes (as an embedded engine does)
    idle: bool = True  # what idle_for says, whatever the priority
    calls: list[SegmentRequest] = field(default_factory=list)
    _ready: bool = False

    @property
    def seconds_per_char(self) -> float | None:
        return self.pace

    def idle_for(self, priority: int) -> bool:
        return self.idle

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            languages=self.languages,
            voices=tuple(
                VoiceInfo(id=voice, engine=self.name, languages=tuple(sorted(self.languages)))
                for voice in self.voices
            ),
            sample_rate=self.sample_rate,
            emotions=self.emotions,
            cloning=self.cloning,
            seeded=True,
            native_speed=(0.5, 2.0),
        )

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.slow_on is not None and self.slow_on in request.text:
            await asyncio.sleep(self.slow_seconds)
        if self.fail_on is not None and self.fail_on in request.text and self.fail_times != 0:
            if self.fail_times is not None:
                self.fail_times -= 1
            raise EngineError(f"engine {self.name!r} failed: told to fail on {self.fail_on!r}")
        if self.reject_on is not None and self.reject_on in request.text:
            raise EngineRejected(f"engine {self.name!r} rejected the text: told to reject {self.reject_on!r}")
        if self.empty_on is not None and self.empty_on in request.text:
            yield np.zeros(0, dtype=np.float32)
            return
        for word in request.text.split():
            yield self._burst(word, request.speed, request.reference.digest if request.reference else "")

    def _burst(self, word: str, speed: float, voice: str) -> PCM:
        n = int(self.sample_rate * self.seconds_per_word / speed)
        t = np.arange(n, dtype=np.float32) / self.sample_rate
        freq = 150.0 + zlib.crc32((voice + word).encode()) % 200
        envelope = np.sin(np.pi * np.arange(n) / n).astype(np.float32)
        return (0.3 * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@dataclass
class TimedFakeEngine(FakeEngine):
    """The fake engine telling each word's time, as Kokoro does (a burst per word, back to back)."""

    def words_of(self, request: SegmentRequest) -> tuple[WordTime, ...] | None:
        length = self.seconds_per_word / request.speed
        return tuple(
            WordTime(word.strip(".,;:!?"), index * length, (index + 1) * length)
            for index, word in enumerate(request.text.split())
        )


class FakeOptions(EngineOptions):
    """What a test (or a demo without models) may set in the ``options`` table."""

    sample_rate: int = Field(default=16000, gt=0)
    seconds_per_word: float = Field(default=0.2, gt=0)
    delay: float = Field(default=0.0, ge=0)
    fail_on: str | None = None
    fail_times: int | None = None
    reject_on: str | None = None
    empty_on: str | None = None
    slow_on: str | None = None
    slow_seconds: float = Field(default=0.0, ge=0)
    languages: frozenset[str] = frozenset({"en", "zh", "ja"})
    emotions: frozenset[str] = frozenset()
    cloning: bool = False
    voices: tuple[str, ...] = Field(default=("tone",), min_length=1)


def _build(config: EngineSettings, options: FakeOptions, context: BuildContext) -> FakeEngine:
    return FakeEngine(name=config.name, **options.model_dump())


KIND = EngineKind("fake", FakeOptions, _build, "a tone per word, for tests and demos without a model")
