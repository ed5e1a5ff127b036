"""Concurrency limits per engine instance: fixed, or found by the pool itself.

:class:`AdaptiveLimit` is AIMD, the rule TCP uses to find a link's capacity:
while requests succeed and the limit is actually used, it grows by about one
per round of requests; when the instance shows it is overloaded (out of
memory, 429/503, a timeout) it shrinks to 70 %. Against a GPU server that
fails above some number of concurrent requests, the limit settles just
under that number without anyone tuning it — where seed 001 found "10–12"
by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FixedLimit:
    value: int

    @property
    def current(self) -> int:
        return self.value

    def on_success(self, in_flight: int) -> None:
        """A fixed limit does not move."""

    def on_overload(self) -> None:
        """A fixed limit does not move."""


@dataclass
class AdaptiveLimit:
    """Additive increase while the limit is used and all is well, multiplicative decrease on overload."""

    value: float = 4.0
    minimum: int = 1
    maximum: int = 64
    backoff: float = 0.7

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.value))

    def on_success(self, in_flight: int) -> None:
        if in_flight + 1 >= self.current:  # only a limit that is in use has proven anything
            self.value = min(self.maximum, self.value + 1.0 / self.value)

    def on_overload(self) -> None:
        self.value = max(float(self.minimum), self.value * self.backoff)
