"""The Engine protocol: what every speech engine, local or remote, offers.

An engine declares its :class:`Capabilities` up front, so the pipeline can
refuse a request it cannot serve before any engine time is spent, and turns
one text segment into float32 mono PCM chunks at its own sample rate.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

PCM = NDArray[np.float32]
"""Mono float32 samples in [-1, 1] at the engine's sample rate."""


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine can speak with."""

    id: str
    engine: str
    languages: tuple[str, ...]
    gender: str | None = None
    description: str = ""


def voices_named(engine: str, ids: Iterable[str], languages: Sequence[str]) -> tuple[VoiceInfo, ...]:
    """Voices known only by id (a remote server's speakers), each speaking all the engine's languages."""
    return tuple(VoiceInfo(id=voice, engine=engine, languages=tuple(languages)) for voice in ids)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; the pipeline checks requests against this."""

    languages: frozenset[str]
    voices: tuple[VoiceInfo, ...]
    sample_rate: int
    max_segment_chars: int = 200
    streaming: bool = False
    cloning: bool = False
    clone_needs_transcript: bool = False  # a cloned voice must say what its reference says (prompt_text)
    blends: bool = False  # mixes its own voices: "a(2)+b(1)"
    markup: bool = False  # reads pinyin [h][ǎo], ARPAbet [M][AY0] and [ipa:…] marks itself
    emotions: frozenset[str] = field(default_factory=frozenset)
    #: any description of an emotion or style goes through as it is ("开心中带点讽刺"), not only ``emotions``
    free_emotions: bool = False
    instructions: bool = False
    #: instructions with a cloned voice too (CosyVoice 1 takes them only with its preset speakers)
    instructions_with_clones: bool = True
    #: why instructions are refused outright (a 422 naming them), for a model that fails on them
    instructions_refused: str | None = None
    seeded: bool = False
    native_speed: tuple[float, float] = (1.0, 1.0)
    #: a server that splits its own text and keeps a sentence's prosody whole: a stream's first
    #: sentence is not cut short for it (a clause alone loses the sentence's intonation)
    whole_sentences: bool = False

    @property
    def default_voice(self) -> str:
        return self.voices[0].id

    def voice(self, voice_id: str) -> VoiceInfo | None:
        return next((v for v in self.voices if v.id == voice_id), None)


@dataclass(frozen=True)
class Reference:
    """A voice to clone: checked, normalized audio (24 kHz mono s16 WAV) and what it says."""

    path: Path
    digest: str  # of the normalized audio; part of every cache key
    transcript: str | None = None


@dataclass(frozen=True)
class SegmentRequest:
    """One piece of text for an engine, already normalized and within its limit."""

    text: str
    language: str
    voice: str
    speed: float = 1.0
    seed: int | None = None
    emotion: str | None = None
    instructions: str | None = None
    reference: Reference | None = None
    #: Where the segment waits for an engine slot: higher priority first (speech before jobs),
    #: then the request that started first (loop time), so a stream under way is not overtaken.
    priority: int = 0
    submitted: float = 0.0


@runtime_checkable
class Engine(Protocol):
    """A speech engine. Implementations live beside this module, one per file."""

    name: str

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def ready(self) -> bool: ...

    @property
    def notice(self) -> str | None:
        """What an operator should know about a working engine that offers less than it could
        (``/readyz`` and a log line say it); None when all is as configured."""
        ...

    async def load(self) -> None:
        """Load weights or connect; called once at start, before ``ready`` turns true."""

    def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        """Yield the segment's audio as it is made (one or more chunks)."""
        ...

    async def close(self) -> None:
        """Release models, processes or connections."""


class EngineBase:
    """What most engines share: a name, capabilities fixed when built, and a ready flag.

    Subclass it and implement ``synthesize``; override ``load`` when there is
    something to load (call ``super().load()`` last) and ``close`` to release.
    """

    def __init__(self, name: str, capabilities: Capabilities) -> None:
        self.name = name
        self._capabilities = capabilities
        self._ready = False

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def notice(self) -> str | None:
        return None

    async def load(self) -> None:
        self._ready = True

    async def close(self) -> None:
        self._ready = False


@runtime_checkable
class BatchEngine(Engine, Protocol):
    """An engine whose runs are expensive to start (a command line that loads its model every time).

    The renderer hands it all of a request's or job's segments at once instead
    of one per run; it answers each in order as it is finished.
    """

    def synthesize_batch(self, requests: Sequence[SegmentRequest]) -> AsyncGenerator[PCM, None]:
        """Each request's whole audio, in order, as each is finished; an error ends the batch, and
        so does closing the generator (nothing of it may run on)."""
        ...


@runtime_checkable
class StreamAware(Engine, Protocol):
    """An engine that runs differently for one stream than for several (see
    :mod:`voxserve.engines.embedded`): the renderer holds ``open_stream()`` while it renders a
    request's or a job's segments on it."""

    def open_stream(self) -> AbstractContextManager[None]: ...


@runtime_checkable
class HealthChecked(Protocol):
    """An engine instance a pool can probe between requests (a server, a GPU's command line)."""

    async def health(self, timeout: float) -> bool:
        """Whether the instance can take requests; never raises."""
        ...
