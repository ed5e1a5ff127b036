"""One engine instance in a pool: its health, load, limit and latency."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from voxserve.engines.base import Engine
from voxserve.engines.calls import CallStats
from voxserve.routing.limits import AdaptiveLimit, FixedLimit


class Role(StrEnum):
    PRIMARY = "primary"
    BACKUP = "backup"


@dataclass
class Instance:
    """State of one instance. Ejected after ``failures_to_eject`` consecutive failures (requests or
    health checks, whichever come), back after ``successes_to_return`` successful health checks."""

    engine: Engine
    url: str
    role: Role
    limit: FixedLimit | AdaptiveLimit
    failures_to_eject: int = 3
    successes_to_return: int = 2
    healthy: bool = True
    in_flight: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    #: what went wrong last (a health check's words, or a failed request's error): why it is out
    last_error: str | None = None
    calls: CallStats = field(default_factory=CallStats)

    @property
    def has_room(self) -> bool:
        return self.healthy and self.in_flight < self.limit.current

    @property
    def load(self) -> float:
        """Outstanding requests relative to the limit: the least loaded instance is chosen."""
        return self.in_flight / self.limit.current

    @property
    def latency_ewma(self) -> float | None:
        return self.calls.latency_ewma

    def succeeded(self, seconds: float) -> None:
        self.calls.succeeded(seconds)
        self.consecutive_failures = 0
        self.limit.on_success(self.in_flight)

    def failed(self, error: str, *, overloaded: bool, unresponsive: bool) -> None:
        """A request failed. Overload shrinks the limit; an instance that is merely overloaded is
        alive, so only unresponsiveness (unreachable, timed out) counts toward ejection."""
        self.calls.failed()
        self.last_error = error
        if overloaded:
            self.limit.on_overload(self.in_flight)
        if unresponsive:
            self._count_failure()

    def eject(self, error: str) -> None:
        """Out at once, for a failure no retry mends (the wrong kind of server at its URL); back after
        ``successes_to_return`` health checks, as any ejected instance."""
        self.calls.failed()
        self.last_error = error
        self.consecutive_successes = 0
        self.healthy = False

    def checked(self, problem: str | None) -> None:
        """An active health check's result: None, or what is wrong."""
        if problem is not None:
            self.last_error = problem
            self._count_failure()
            return
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if not self.healthy and self.consecutive_successes >= self.successes_to_return:
            self.healthy = True

    def _count_failure(self) -> None:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failures_to_eject:
            self.healthy = False

    def snapshot(self) -> dict[str, object]:
        """As ``/v1/engines`` and ``/metrics`` show it: healthy when it takes traffic (an instance still
        warming up, such as a GLM-TTS app loading its model, does not)."""
        return self.calls.view(
            self.url,
            self.role.value,
            healthy=self.healthy and self.engine.ready,
            in_flight=self.in_flight,
            limit=self.limit.current,
            adaptive=isinstance(self.limit, AdaptiveLimit),
            last_error=self.last_error,
        )
