"""A pool of instances of one engine, behind the same Engine protocol.

What an nginx upstream block and a hand-tuned client semaphore do for a
hand-built deployment, done per request:

- each request goes to the healthy primary instance with the fewest
  outstanding requests relative to its limit; backups only when no primary
  is healthy;
- each instance has a concurrency limit, fixed or adaptive
  (:class:`~voxserve.routing.limits.AdaptiveLimit`); a request above every
  limit waits in a bounded line served in order
  (:class:`~voxserve.engines.admission.AdmissionQueue`), and gets 503 with
  Retry-After when the line is full or its deadline passes, never a hung
  connection;
- audio streams through as it arrives; any failure (refused, 5xx, out of
  memory, an answer that breaks off when an instance dies) is retried on
  another instance with backoff and jitter, resuming after the samples
  already delivered, so nothing is lost or repeated;
- an answer that breaks off, or a bare 500, with no word of memory is taken
  for the input's fault (a voice the model lacks, a text it asserts on):
  asked once more elsewhere, then the request's own 502, never ejecting the
  instance; only answers of several requests breaking off under load are the
  instance's (a GPU out of memory): overload, which lowers its limit;
- instances are ejected after repeated failures (requests or health checks)
  and return after successful active health checks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from voxserve.client.retry import backoff
from voxserve.engines.admission import AdmissionQueue, QueueFull, WaitTimeout
from voxserve.engines.base import HealthChecked
from voxserve.errors import (
    EngineError,
    EngineFailed,
    EngineMisconfigured,
    EngineOverloaded,
    EngineTimeout,
    EngineUnavailable,
)
from voxserve.routing.instance import Instance
from voxserve.values import PCM, Capabilities, SegmentRequest

log = logging.getLogger(__name__)


#: A break under load is the instances' (out of memory) when an answer of another request broke off
#: under load in this pool within this many seconds too; else it is taken for the input's.
BREAK_WINDOW = 10.0


@dataclass(frozen=True)
class PoolSettings:
    health_interval: float = 5.0
    health_timeout: float = 2.0
    queue_timeout: float = 30.0
    max_queue: int = 1000
    attempts: int = 3
    retry_base: float = 0.05


def _own_words(instance: Instance, error: str) -> str:
    """A failure as an instance keeps it: without the engine and URL its message begins with (the
    instance is shown beside its URL)."""
    return error.split(f" at {instance.url} ", 1)[-1]


class Pool:
    """Instances of one remote engine, with balancing, limits, queueing, retries and health checks."""

    def __init__(
        self, name: str, instances: Sequence[Instance], settings: PoolSettings = PoolSettings()
    ) -> None:
        if not instances:
            raise ValueError(f"engine {name!r} has no instances")
        self.name = name
        self.instances = list(instances)
        self.settings = settings
        self._line: AdmissionQueue[Instance] = AdmissionQueue(settings.max_queue, self._release)
        self._health_task: asyncio.Task[None] | None = None
        self._requests = itertools.count()  # numbers a segment request (its tries share one)
        self._breaks: deque[tuple[float, int]] = deque()  # (when, request) of answers broken under load

    @property
    def capabilities(self) -> Capabilities:
        return self.instances[0].engine.capabilities

    @property
    def ready(self) -> bool:
        return any(i.engine.ready and i.healthy for i in self.instances)

    @property
    def unavailable(self) -> str | None:
        """Why no instance can take requests, each one's last failure; None when one can, or while
        every instance is healthy but still warming up (a GLM-TTS app loading its model)."""
        if self.ready:
            return None
        down = [instance for instance in self.instances if not instance.healthy]
        if not down:
            return None
        return "; ".join(f"{instance.url}: {instance.last_error or 'ejected'}" for instance in down)

    @property
    def notice(self) -> str | None:
        return None  # an instance that is down is in /v1/engines and the metrics, not a notice

    async def load(self) -> None:
        for instance in self.instances:
            await instance.engine.load()
        self._health_task = asyncio.create_task(self._watch_health(), name=f"health {self.name}")

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
        for instance in self.instances:
            await instance.engine.close()

    def snapshot(self) -> list[dict[str, object]]:
        return [instance.snapshot() for instance in self.instances]

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        """One segment, streamed from whichever instance can make it before the queue deadline.

        Chunks go on as they arrive. If an instance fails part-way, the segment
        is asked of another one and the samples already delivered are skipped,
        so nothing is repeated or lost (seamless for engines that are
        deterministic for a request; others continue from a fresh rendition).
        An overloaded instance is alive: its refusal sends the segment back to
        the queue until the deadline. Hard failures (unreachable, silent) count
        against ``attempts``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.queue_timeout
        number = next(self._requests)
        failures = 0
        input_failures = 0
        delivered = 0
        failed: Instance | None = None
        while True:
            instance = await self._acquire(deadline, request, avoid=failed)
            started = time.monotonic()
            skip = delivered
            try:
                async for chunk in instance.engine.synthesize(request):
                    if skip:
                        dropped = min(skip, chunk.size)
                        skip -= dropped
                        chunk = chunk[dropped:]
                    if chunk.size:
                        delivered += chunk.size
                        yield chunk
            except EngineError as exc:
                error, hard = self._judge(instance, exc, number, loop.time())
                failures += hard
                if isinstance(error, EngineFailed):
                    input_failures += 1
                    if input_failures >= 2:
                        raise EngineFailed(
                            f"{exc.message} (and again when asked a second time: it fails on this input)",
                            broke_off=error.broke_off,
                        ) from exc
            else:
                instance.succeeded(time.monotonic() - started)
                return
            finally:
                self._release(instance)
            failed = instance
            log.warning("engine %s at %s failed: %s", self.name, instance.url, error)
            if failures >= self.settings.attempts or loop.time() >= deadline:
                raise error
            await asyncio.sleep(backoff(failures + 1, self.settings.retry_base, cap=2.0))

    def _judge(
        self, instance: Instance, exc: EngineError, request: int, now: float
    ) -> tuple[EngineError, bool]:
        """What a failure says of the instance (told to it), and whether it counts against ``attempts``.

        An answer that failed on its input (``EngineFailed``: it stopped short, or a bare 500) is
        that request's failure: asked once more, then its own 502; it never ejects the instance.
        Only an answer that broke off while the instance served others too can be the instance's:
        a GPU out of memory breaks answers under load, and shows nothing else. Such a break lowers
        the instance's limit, and when an answer of another request broke off under load lately
        too, it is overload, retried until the deadline, not held against the request
        (``request`` numbers the segment request; its tries share it).
        """
        if isinstance(exc, EngineMisconfigured):
            was = instance.healthy
            instance.eject(_own_words(instance, exc.message))
            if was:
                log.error("engine %s at %s is ejected: %s", self.name, instance.url, instance.last_error)
            return exc, True
        if isinstance(exc, EngineFailed):
            if not (exc.broke_off and instance.in_flight > 1):
                instance.calls.failed()
                instance.last_error = _own_words(instance, exc.message)
                return exc, False
            instance.failed(_own_words(instance, exc.message), overloaded=True, unresponsive=False)
            if not self._others_broke(request, now):
                return exc, False
            return EngineOverloaded(
                f"{exc.message} (answers to other requests broke off too: overloaded)"
            ), False
        if isinstance(exc, EngineOverloaded):
            instance.failed(_own_words(instance, exc.message), overloaded=True, unresponsive=False)
            return exc, False
        if isinstance(exc, EngineTimeout | EngineUnavailable):
            instance.failed(
                _own_words(instance, exc.message),
                overloaded=isinstance(exc, EngineTimeout),
                unresponsive=True,
            )
            return exc, True
        raise exc  # the engine's answer itself is wrong (no audio): no other instance will mend it

    def _others_broke(self, request: int, now: float) -> bool:
        """Records that an answer to ``request`` broke off under load: whether an answer of another
        request did too, in this pool within :data:`BREAK_WINDOW`."""
        breaks = self._breaks
        breaks.append((now, request))
        while breaks and now - breaks[0][0] > BREAK_WINDOW:
            breaks.popleft()
        return any(number != request for _, number in breaks)

    def _pick(self, avoid: Instance | None = None) -> Instance | None:
        """The least loaded instance with room; a retry goes elsewhere than where it failed if it can."""
        healthy = [i for i in self.instances if i.healthy and i.engine.ready]
        primaries = [i for i in healthy if i.role == "primary"]
        candidates = [i for i in (primaries or healthy) if i.has_room]
        candidates = [i for i in candidates if i is not avoid] or candidates
        return min(candidates, key=lambda i: (i.load, i.latency_ewma or 0.0)) if candidates else None

    def _take(self, avoid: Instance | None) -> Instance | None:
        instance = self._pick(avoid)
        if instance is not None:
            instance.in_flight += 1
        return instance

    def _release(self, instance: Instance) -> None:
        instance.in_flight -= 1
        self._line.dispatch()

    async def _acquire(
        self, deadline: float, request: SegmentRequest, avoid: Instance | None = None
    ) -> Instance:
        """A slot on the best instance, waiting in line (in order) until the deadline."""
        if not any(i.healthy for i in self.instances):
            raise EngineUnavailable(f"engine {self.name!r} cannot serve: {self.unavailable}")
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await self._line.acquire(
                lambda: self._take(avoid), max(0.0, remaining), request.priority, request.submitted
            )
        except QueueFull:
            raise EngineOverloaded(
                f"engine {self.name!r}: {self._line.waiting} requests already waiting"
            ) from None
        except WaitTimeout:
            waited = f"{self.settings.queue_timeout:g} s"
            raise EngineOverloaded(f"engine {self.name!r}: every instance stayed busy for {waited}") from None

    async def _watch_health(self) -> None:
        while True:
            await asyncio.gather(*(self._check(instance) for instance in self.instances))
            await asyncio.sleep(self.settings.health_interval)

    async def _check(self, instance: Instance) -> None:
        engine = instance.engine
        if not isinstance(engine, HealthChecked):
            return
        was = instance.healthy
        instance.checked(await engine.health(self.settings.health_timeout))
        if instance.healthy and not was:
            log.warning("engine %s at %s is back", self.name, instance.url)
        elif was and not instance.healthy:
            log.warning("engine %s at %s is ejected: %s", self.name, instance.url, instance.last_error)
        if instance.healthy != was or (instance.healthy and engine.ready):
            self._line.dispatch()  # an instance back, or one that turned ready since (warmed up)
