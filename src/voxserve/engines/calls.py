"""Counts and latency of the calls one engine instance served, remote or in this process.

``/v1/engines``, ``voxserve engines`` and ``/metrics`` show the same figures for every engine:
a pool keeps one of these per server, an embedded engine or a program one for itself.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field


@dataclass
class CallStats:
    """Requests, errors and latency (an EWMA, and p95 over the last 200 successes)."""

    requests: int = 0
    errors: int = 0
    latency_ewma: float | None = None
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def latency_p95(self) -> float | None:
        if len(self._latencies) < 2:
            return self._latencies[0] if self._latencies else None
        return statistics.quantiles(self._latencies, n=20)[-1]

    def succeeded(self, seconds: float) -> None:
        self.requests += 1
        self._latencies.append(seconds)
        self.latency_ewma = seconds if self.latency_ewma is None else 0.8 * self.latency_ewma + 0.2 * seconds

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
