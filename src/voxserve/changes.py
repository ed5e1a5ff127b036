"""A change signal: wakes every coroutine waiting for "something changed", at once."""

from __future__ import annotations

import asyncio
import contextlib


class ChangeSignal:
    """``notify()`` wakes all current ``wait()``-ers; a waiter also wakes after its timeout.

    Waiters re-check their condition after waking, so a spurious or missed
    wake-up costs at most one timeout, never correctness.
    """

    def __init__(self) -> None:
        self._changed: asyncio.Future[None] | None = None

    def notify(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    async def wait(self, timeout: float) -> None:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._changed), timeout)
