"""Counts and latency of the calls one engine instance served, remote or in this process.

``/v1/engines``, ``voxserve engines`` and ``/metrics`` show the same figures for every engine:
a pool keeps one of these per server, an embedded engine or a program one for itself.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field


def _ewma(last: float | None, value: float) -> float:
    return value if last is None else 0.8 * last + 0.2 * value


@dataclass
class CallStats:
    """Requests, errors and latency (an EWMA, and p95 over the last 200 successes); for an engine in
    this process, its pace too (seconds per character of input, an EWMA)."""

    requests: int = 0
    errors: int = 0
    latency_ewma: float | None = None
    seconds_per_char: float | None = None
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def latency_p95(self) -> float | None:
        if len(self._latencies) < 2:
            return self._latencies[0] if self._latencies else None
        return statistics.quantiles(self._latencies, n=20)[-1]

    def succeeded(self, seconds: float, chars: int = 0) -> None:
        """A call that took ``seconds``; ``chars``: its input's length, when it sets the pace."""
        self.requests += 1
        self._latencies.append(seconds)
        self.latency_ewma = _ewma(self.latency_ewma, seconds)
        if chars:
            self.paced(seconds, chars)

    def paced(self, seconds: float, chars: int) -> None:
        """``chars`` characters rendered in ``seconds`` (a warm-up's sets the first pace)."""
        self.seconds_per_char = _ewma(self.seconds_per_char, seconds / chars)

    def failed(self) -> None:
        self.requests += 1
        self.errors += 1

    def view(
        self,
        url: str,
        role: str,
        *,
        healthy: bool,
        in_flight: int,
        limit: int,
        adaptive: bool = False,
        last_error: str | None = None,
    ) -> dict[str, object]:
        """One instance as ``/v1/engines`` lists it (latencies in milliseconds)."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 1)

        return {
            "url": url,
            "role": role,
            "healthy": healthy,
            "in_flight": in_flight,
            "limit": limit,
            "adaptive": adaptive,
            "latency_ms_ewma": ms(self.latency_ewma),
            "latency_ms_p95": ms(self.latency_p95),
            "requests": self.requests,
            "errors": self.errors,
            "last_error": last_error,
        }
