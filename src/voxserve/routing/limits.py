"""Concurrency limits per engine instance: fixed, or found by the pool itself.

:class:`AdaptiveLimit` finds an instance's capacity the way TCP finds a
link's: it grows by one per success while the limit is in use, until the
instance first shows overload (out of memory, 429/503, a timeout). It then
remembers that point (the ceiling), steps down to 90 %, climbs quickly back
to just under the ceiling and probes above it slowly. A probe that fails at
the ceiling only confirms it: the limit goes back to one below, with no
step down, and the next probe waits twice as long (up to 64 rounds), so a
stable instance spends nearly all its time at its capacity. Overload below
the ceiling means the capacity shrank: the 10 % step down again, and
probing at the base pace. Outcomes of requests that were already in flight
when it stepped down do not step it down again (they would, again and
again), but one that broke with fewer requests running than the knee was
thought to be lowers the knee: slow start overshoots, and the first
failure seen is not always the lowest. Against a GPU server that fails above
some number of concurrent requests, the limit settles at that number
without anyone tuning it — where people find "10–12" by hand.
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

    def on_overload(self, in_flight: int = 1) -> None:
        """A fixed limit does not move."""


@dataclass
class AdaptiveLimit:
    """Fast growth to the last known ceiling, slow probing above it, a 10 % step down on overload."""

    value: float = 4.0
    minimum: int = 1
    maximum: int = 64
    backoff: float = 0.9
    probe_rounds: int = 4  # rounds of requests at the ceiling before probing one above it
    max_probe_rounds: int = 64
    ceiling: float | None = None
    _settling: int = 0  # requests in flight when the limit stepped down
    _rounds: int = 0  # the current probing pace; doubles each time a probe confirms the ceiling

    def __post_init__(self) -> None:
        self._rounds = self.probe_rounds

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.value))

    def on_success(self, in_flight: int) -> None:
        if self._settling:
            self._settling -= 1
            return
        if in_flight + 1 < self.current:  # only a limit that is in use has proven anything
            return
        below_ceiling = self.ceiling is None or self.value + 1 < self.ceiling
        step = 1.0 if below_ceiling else 1.0 / (self._rounds * self.value)
        self.value = min(float(self.maximum), self.value + step)

    def on_overload(self, in_flight: int = 1) -> None:
        if self._settling:
            self._settling -= 1
            if self.ceiling is not None and in_flight < self.ceiling:
                # it broke with fewer running than the knee was thought to be: lower the knee, no new step
                self.ceiling = float(in_flight)
                self.value = min(self.value, float(max(self.minimum, in_flight - 1)))
            return
        # it broke with ``in_flight`` requests running: that, not the limit, is where the knee is
        if self.ceiling is not None and in_flight >= self.ceiling:  # a probe confirmed the ceiling
            self.value = float(max(self.minimum, in_flight - 1))
            self._rounds = min(2 * self._rounds, self.max_probe_rounds)
        else:
            self.value = max(float(self.minimum), min(self.value, in_flight - 1) * self.backoff)
            self._rounds = self.probe_rounds
        self.ceiling = float(in_flight)
        self._settling = max(0, in_flight - 1)
