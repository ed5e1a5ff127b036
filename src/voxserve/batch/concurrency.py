"""How many requests a batch keeps in flight, found from the servers' answers as TCP finds a window.

No number from the user: the limit starts small and grows while answers come back as fast as the
quickest ones (the servers have room), and backs off as soon as they slow down (requests are
waiting in a queue) or the servers refuse (429/503, with their ``Retry-After`` honoured by everyone).

The signal is TCP Vegas's: with ``best`` the cost of an answer when nothing waits (seconds per
character, so long and short texts compare) and ``cost`` the recent cost, ``limit × (1 − best /
cost)`` estimates how many requests are queued. Between ``ALPHA`` and ``BETA`` queued the servers
are busy all the time without a long queue: the limit holds there.

A voxserve gateway says how many requests its engines run at once (``GET /v1/engines``: each
instance's limit). Then nothing needs discovering: the batch keeps that many in flight and a few
more waiting in the gateway's queue (:func:`with_waiting`), so an engine that finishes one request
starts the next at once, and follows the gateway's figure as it changes (:meth:`follow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

ALPHA, BETA = 3.0, 6.0  # requests waiting in the servers' queues: fewer, grow; more, shrink
SAMPLES = 500  # the best cost is the lowest of this many recent answers


def with_waiting(capacity: int) -> int:
    """Requests to keep in flight for a gateway whose engines run ``capacity`` at once: a quarter
    more (at least two) wait in its queue, to cover each answer's way back and the next request's
    way there; more would only wait longer."""
    return capacity + max(2, capacity // 4)


@dataclass
class Snapshot:
    limit: int
    in_flight: int
    queued: float


class AdaptiveLimit:
    """A concurrency limit that adapts (``fixed`` pins it, as ``-j N`` does)."""

    def __init__(self, fixed: int | None = None, initial: int = 2, maximum: int = 256) -> None:
        self.fixed = fixed
        self.limit = float(fixed or initial)
        self.maximum = maximum
        self.in_flight = 0
        self._costs: deque[float] = deque(maxlen=SAMPLES)
        self._recent: float | None = None
        self._slow_start = True
        self._paused_until = 0.0
        self._changed = asyncio.Condition()
        self.following = False  # the limit is the gateway's own figure, not found from answers

    @property
    def snapshot(self) -> Snapshot:
        return Snapshot(int(self.limit), self.in_flight, self._queued())

    async def acquire(self) -> None:
        """Wait for a free place under the limit, and out of any pause the servers asked for."""
        async with self._changed:
            while True:
                pause = self._paused_until - time.monotonic()
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), pause)
                    continue
                if self.in_flight < max(1, int(self.limit)):
                    self.in_flight += 1
                    return
                await self._changed.wait()

    async def succeeded(self, seconds: float, chars: int) -> None:
        """An answer came back: learn its cost, and grow or shrink."""
        cost = seconds / max(chars, 20)
        self._costs.append(cost)
        self._recent = cost if self._recent is None else 0.8 * self._recent + 0.2 * cost
        if self.fixed is None and not self.following:
            queued = self._queued()
            if queued < ALPHA:
                self.limit += 1.0 if self._slow_start else 1.0 / self.limit
            elif queued > BETA:
                self._slow_start = False
                self.limit = max(1.0, self.limit - 1.0 / self.limit * (queued - BETA))
            self.limit = min(self.limit, self.maximum)
        await self._release()

    async def refused(self, retry_after: float | None) -> None:
        """The servers said no (429, 503, a timeout): halve, and everyone waits ``retry_after``."""
        if self.fixed is None:
            self._slow_start = False
            self.limit = max(1.0, self.limit / 2)
        if retry_after:
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
        await self._release()

    async def follow(self, capacity: int) -> None:
        """The gateway's engines run ``capacity`` requests at once: keep that many in flight and a
        few waiting (a refusal still halves it until the gateway's next figure)."""
        if self.fixed is not None:
            return
        self.following = True
        self.limit = float(min(with_waiting(capacity), self.maximum))
        async with self._changed:
            self._changed.notify_all()

    async def failed(self) -> None:
        """Any other failure: no news about capacity."""
        await self._release()

    def _queued(self) -> float:
        if not self._costs or self._recent is None:
            return 0.0
        return self.limit * max(0.0, 1.0 - min(self._costs) / self._recent)

    async def _release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()
