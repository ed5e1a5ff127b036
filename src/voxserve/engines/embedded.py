"""Shared machinery for engines that run a model inside this process.

Models are blocking CPU work. They run in a thread pool that the application
sizes to the machine's cores, never on the event loop, and each engine bounds
how many of its calls run at once. Segments beyond that wait in line, in
order (:class:`~voxserve.routing.admission.AdmissionQueue`, as in remote
pools), for at most ``Waiting.timeout`` seconds: then 503 ``busy`` with
Retry-After, instead of a client left without headers for minutes. A segment
is the unit of work, so a cancelled request stops before its next segment,
and one still waiting in line costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

from voxserve.engines.base import PCM, Capabilities, EngineBase, SegmentRequest
from voxserve.errors import Busy, EngineError, NotReady
from voxserve.routing.admission import AdmissionQueue, QueueFull, WaitTimeout
from voxserve.routing.calls import CallStats

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Waiting:
    """How long, and how many, segments may wait for a slot (an engine's ``queue_timeout``, ``max_queue``)."""

    timeout: float = 30.0
    max_queue: int = 1000


async def wait_in_line(
    line: AdmissionQueue[T],
    take: Callable[[], T | None],
    waiting: Waiting,
    request: SegmentRequest,
    engine: str,
) -> T:
    """A slot of an engine that runs here, in order; 503 ``busy`` when the line is full or too slow."""
    try:
        return await line.acquire(take, waiting.timeout, request.priority, request.submitted)
    except QueueFull:
        raise Busy(f"engine {engine!r}: {line.waiting} segments already wait; retry shortly") from None
    except WaitTimeout:
        raise Busy(f"engine {engine!r} stayed busy for {waiting.timeout:g} s; retry shortly") from None


class EmbeddedEngine(EngineBase, ABC):
    """Base of in-process engines: bounded, off-loop execution of ``_render``."""

    def __init__(
        self,
        name: str,
        capabilities: Capabilities,
        executor: Executor,
        max_concurrency: int = 1,
        waiting: Waiting = Waiting(),
    ) -> None:
        super().__init__(name, capabilities)
        self._executor = executor
        self._limit = max_concurrency
        self._running = 0
        self._waiting = waiting
        self._line: AdmissionQueue[bool] = AdmissionQueue(waiting.max_queue, lambda _: self._release())
        self.calls = CallStats()

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)
        await loop.run_in_executor(self._executor, self._warm_up)
        await super().load()
        log.info("engine %s loaded", self.name)

    def _take(self) -> bool | None:
        if self._running >= self._limit:
            return None
        self._running += 1
        return True

    def _release(self) -> None:
        self._running -= 1
        self._line.dispatch()

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        if not self._ready:
            raise NotReady(f"engine {self.name!r} is still loading")
        await wait_in_line(self._line, self._take, self._waiting, request, self.name)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        work = self._executor.submit(self._render, request)
        # the slot is free when the model call ends, even if this request was canceled meanwhile
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        try:
            audio = await asyncio.wrap_future(work)
        except (ValueError, RuntimeError) as exc:
            self.calls.failed()
            raise EngineError(f"engine {self.name!r} failed: {exc}") from exc
        self.calls.succeeded(time.perf_counter() - started)
        yield audio

    def snapshot(self) -> list[dict[str, object]]:
        """The model in this process as the one instance ``/v1/engines`` and ``/metrics`` show."""
        return [
            self.calls.view(
                "embedded", "primary", healthy=self.ready, in_flight=self._running, limit=self._limit
            )
        ]

    @abstractmethod
    def _load(self) -> None:
        """Load the model (blocking; runs in the pool)."""

    @abstractmethod
    def _warm_up(self) -> None:
        """Run one tiny synthesis so the first request does not pay for lazy setup."""

    @abstractmethod
    def _render(self, request: SegmentRequest) -> PCM:
        """Synthesize one segment (blocking; runs in the pool)."""
