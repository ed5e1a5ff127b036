"""The Engine protocol: what every speech engine, local or remote, offers.

An engine declares its :class:`Capabilities` up front, so the pipeline can
refuse a request it cannot serve before any engine time is spent, and turns
one text segment into float32 mono PCM chunks at its own sample rate.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from voxserve.values import PCM, Capabilities, SegmentRequest, WordTime


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
    :mod:`voxserve.engines.embedded`): the renderer holds ``open_stream(priority)`` while it
    renders a request's or a job's segments on it (at the plan's priority)."""

    def open_stream(self, priority: int = 0) -> AbstractContextManager[None]: ...


@runtime_checkable
class WordTimed(Engine, Protocol):
    """An engine that knows when each word of a segment is spoken (Kokoro: its predicted durations)."""

    def words_of(self, request: SegmentRequest) -> tuple[WordTime, ...] | None:
        """The words of the request just rendered (asked once, right after its audio), or None when
        its text could not be matched to its phonemes word for word."""


@runtime_checkable
class HealthChecked(Protocol):
    """An engine instance a pool can probe between requests (a server, a GPU's command line)."""

    async def health(self, timeout: float) -> str | None:
        """None when the instance can take requests, else what is wrong, in words an operator acts
        on ("connection refused", "GET / answered 503"): ``/v1/engines`` and the log say it. Never
        raises."""
        ...


@runtime_checkable
class Elsewhere(Protocol):
    """An engine whose model runs in other processes (a pool over servers). This process serves
    without it, so it does not hold readiness back; ``unavailable`` says why it cannot serve now."""

    @property
    def unavailable(self) -> str | None:
        """Why no instance can take requests (each one's last failure); None when one can, or while
        none has failed yet."""
        ...


@runtime_checkable
class Paced(Protocol):
    """An engine that knows how fast it renders here (its model runs in this process): the planner
    cuts a listener's first sentence short only when rendering it whole would keep the first audio
    waiting (see ``Planner``); an engine without a pace gets whole sentences."""

    @property
    def seconds_per_char(self) -> float | None:
        """What one character of input has taken to render, lately (None: not measured yet)."""
        ...

    def idle_for(self, priority: int) -> bool:
        """No stream of ``priority`` or above renders (or waits) here now: a new stream of that
        priority goes first, so a short first piece is what its first audio waits for, not the
        segments of others like it."""
        ...
