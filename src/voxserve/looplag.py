"""How late the event loop runs: the one number that shows work that should be in a thread.

A probe sleeps :data:`INTERVAL` seconds again and again; how much later than
asked it wakes is the lag every other coroutine suffered at that moment.
Each sample goes into a Prometheus histogram, and the last :data:`WINDOW`
seconds of samples are kept so ``/metrics`` can say the recent median,
p99 and maximum exactly (``python -m bench loop`` reads those).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import numpy as np

INTERVAL = 0.05
WINDOW = 30.0


class LoopLagMonitor:
    """Samples the running loop's lag until cancelled."""

    def __init__(
        self,
        observe: Callable[[float], None] | None = None,
        interval: float = INTERVAL,
        window: float = WINDOW,
    ) -> None:
        self.interval = interval
        self._samples: deque[float] = deque(maxlen=max(1, int(window / interval)))
        self._observe = observe

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - start - self.interval)
            self._samples.append(lag)
            if self._observe is not None:
                self._observe(lag)

    def quantiles(self, points: tuple[float, ...] = (0.5, 0.99, 1.0)) -> dict[float, float]:
        """Lag in seconds at each quantile of the window (empty before the first sample)."""
        if not self._samples:
            return {}
        values = np.quantile(np.fromiter(self._samples, float), points)
        return dict(zip(points, (float(v) for v in values), strict=True))
