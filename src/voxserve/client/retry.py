"""Backoff with jitter, as a pure function so it can be tested without I/O."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(
    attempt: int, base: float = 1.0, cap: float = 60.0, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, capped, with "equal jitter".

    Attempt 1 waits between base/2 and base, attempt 2 between base and 2*base,
    and so on up to ``cap``; half of each wait is random so that many clients
    that failed together do not all come back at the same moment.
    """
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return float(ceiling / 2 + rng() * ceiling / 2)
