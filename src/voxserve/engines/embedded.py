"""Shared machinery for engines that run a model inside this process.

Models are blocking CPU work. They run in a thread pool that the application
sizes to the machine's cores, never on the event loop, and each engine bounds
how many of its calls run at once. Segments beyond that wait in line, in
order (:class:`~voxserve.engines.admission.AdmissionQueue`, as in remote
pools), for at most ``Waiting.timeout`` seconds: then 503 ``busy`` with
Retry-After, instead of a client left without headers for minutes. A segment
is the unit of work, so a cancelled request stops before its next segment,
and one still waiting in line costs nothing.

Lanes: an engine runs up to ``lanes`` calls at once, each on a model instance
(a *runner*) of its own with ``threads // lanes`` threads, because on a CPU
several narrow runs finish more work than one wide run (two one-thread
Kokoro sessions on two cores make 1.24x the audio of one two-thread session).
A segment of a lone stream (one request or job being rendered on this
engine, nothing else running or waiting) takes one more runner with all
``threads`` instead, so a lone stream's first audio is as fast as the model
can make it; while streams overlap, they all stay on narrow runners, never
a wide run competing with narrow ones for the cores. Each runner holds its own copy of
the model and its working memory (docs/configuration.md says what that costs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from voxserve.engines.admission import AdmissionQueue, QueueFull, WaitTimeout
from voxserve.engines.base import EngineBase
from voxserve.engines.calls import CallStats
from voxserve.errors import Busy, EngineError, NotReady
from voxserve.values import PCM, Capabilities, SegmentRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")  # a runner: one loaded instance of a model


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


K = TypeVar("K")
V = TypeVar("V")
HANDOVER_SIZE = 256  # renders whose by-products wait to be taken


class Handover(Generic[K, V]):
    """What a render learned beside its audio (a segment's word times), kept for the caller to take
    right after: by the request object itself (it lives until then), the oldest dropped past
    :data:`HANDOVER_SIZE` (a caller that never asks). Thread-safe: renders run in threads."""

    def __init__(self) -> None:
        self._held: OrderedDict[int, V] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._held[id(key)] = value
            while len(self._held) > HANDOVER_SIZE:
                self._held.popitem(last=False)

    def take(self, key: K) -> V | None:
        with self._lock:
            return self._held.pop(id(key), None)


class EmbeddedEngine(EngineBase, ABC, Generic[R]):
    """Base of in-process engines: bounded, off-loop execution of ``_render`` on lanes (see above)."""

    def __init__(
        self,
        name: str,
        capabilities: Capabilities,
        executor: Executor,
        threads: int = 1,
        lanes: int = 1,
        waiting: Waiting = Waiting(),
        warm_up: bool = True,
    ) -> None:
        super().__init__(name, capabilities)
        self._warms_up = warm_up
        self._executor = executor
        self._threads = threads
        self._limit = lanes
        self._running = 0
        self._waiting = waiting
        self._free: list[R] = []  # narrow runners not in use
        self._wide: R | None = None  # the all-threads runner, when lanes split the threads
        self._wide_busy = False
        self._streams: list[int] = []  # the priorities of the requests and jobs rendered here now
        self._line: AdmissionQueue[R] = AdmissionQueue(waiting.max_queue, self._release)
        self.calls = CallStats()

    @property
    def lane_threads(self) -> int:
        """Threads of one narrow runner."""
        return max(1, self._threads // self._limit)

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_runners)
        if self._warms_up:
            await loop.run_in_executor(self._executor, self._warm_up)
        await super().load()
        log.info(
            "engine %s loaded: %d lanes of %d thread(s)%s",
            self.name,
            self._limit,
            self.lane_threads,
            f", and one of {self._threads} for a lone stream" if self._wide is not None else "",
        )

    def _load_runners(self) -> None:
        self._load()
        self._free = [self._new_runner(self.lane_threads) for _ in range(self._limit)]
        if self._threads > self.lane_threads:
            self._wide = self._new_runner(self._threads)

    @contextlib.contextmanager
    def open_stream(self, priority: int = 0) -> Iterator[None]:
        """While a request's (or job's) segments are rendered here: how many streams there are decides
        between the wide runner and narrow ones, and their priorities whether a new one is first."""
        self._streams.append(priority)
        try:
            yield
        finally:
            self._streams.remove(priority)

    def _take(self) -> R | None:
        """A runner for the head of the line: the wide one if its stream is alone."""
        if self._running >= self._limit:
            return None
        self._running += 1
        alone = (
            self._running == 1 and self._line.waiting <= 1 and len(self._streams) <= 1
        )  # the line holds it
        if alone and self._wide is not None and not self._wide_busy:
            self._wide_busy = True
            return self._wide
        return self._free.pop()

    def _release(self, runner: R) -> None:
        if runner is self._wide:
            self._wide_busy = False
        else:
            self._free.append(runner)
        self._running -= 1
        self._line.dispatch()

    def _warm_up(self) -> None:
        """One tiny synthesis on every runner, so no first request pays for lazy setup; then the
        same text four times over on the last (the wide runner, which a lone stream's first segment
        takes), warm now, which sets the first pace: a call's fixed cost spread over a sentence's
        worth of characters, not six (that made hibari look slow enough to cut)."""
        request = self._warm_up_request()
        runners = [*self._free, *([self._wide] if self._wide is not None else [])]
        for runner in runners:
            self._render(runner, request)
        paced = replace(request, text=" ".join([request.text] * 4))
        started = time.perf_counter()
        self._render(runners[-1], paced)
        self.calls.paced(time.perf_counter() - started, len(paced.text))

    @property
    def seconds_per_char(self) -> float | None:
        return self.calls.seconds_per_char

    def idle_for(self, priority: int) -> bool:
        # every segment that renders or waits here belongs to an open stream
        return all(other < priority for other in self._streams)

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        if not self._ready:
            raise NotReady(f"engine {self.name!r} is still loading")
        runner = await wait_in_line(self._line, self._take, self._waiting, request, self.name)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        work = self._executor.submit(self._render, runner, request)
        # the runner is free when the model call ends, even if this request was canceled meanwhile
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, runner))
        try:
            audio = await asyncio.wrap_future(work)
        except (ValueError, RuntimeError) as exc:
            self.calls.failed()
            raise EngineError(f"engine {self.name!r} failed: {exc}") from exc
        self.calls.succeeded(time.perf_counter() - started, len(request.text))
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
        """Load what every runner shares (front ends, files); blocking, runs in the pool."""

    @abstractmethod
    def _new_runner(self, threads: int) -> R:
        """One more instance of the model, computing on ``threads`` threads (blocking)."""

    @abstractmethod
    def _warm_up_request(self) -> SegmentRequest:
        """A tiny synthesis that touches what a first real one would."""

    @abstractmethod
    def _render(self, runner: R, request: SegmentRequest) -> PCM:
        """Synthesize one segment on ``runner`` (blocking; runs in the pool)."""
