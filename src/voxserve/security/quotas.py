"""Quotas and rate limits per key (or per client address), counted by the ``limits`` library.

In memory for one process, in Redis for several replicas (one count for
all). A request is checked against every limit that applies to it first,
and charged only if it passes them all, so a refused request consumes
nothing. Two replicas racing for the last unit are settled by the charge
itself: a charge that overshoots is taken back and refused.

- requests per minute (every metered request), characters per day and per
  month (speech and jobs: the characters they ask to synthesize): fixed
  windows;
- concurrent streams (speech requests being answered): a counter taken and
  given back, with an expiry so a replica that dies cannot hold slots for ever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from limits import (
    RateLimitItem,
    RateLimitItemPerDay,
    RateLimitItemPerMinute,
    RateLimitItemPerMonth,
)
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from voxserve.config import Quota
from voxserve.errors import RateLimited

STREAM_SLOT_SECONDS = 3600  # the longest a stream slot can outlive a replica that died holding it


@dataclass(frozen=True)
class Rule:
    """One limit of a quota: what it counts, the window, and its field name (for the error)."""

    item: RateLimitItem
    cost: int
    name: str
    unit: str


@dataclass
class Admitted:
    """What passed: the request-rate headers, and the stream slot to give back (if one was taken)."""

    headers: dict[str, str] = field(default_factory=dict)
    stream_key: str | None = None


def rules(quota: Quota, chars: int) -> list[Rule]:
    """The limits one request of ``chars`` characters is counted against, requests per minute first."""
    found = []
    if quota.requests_per_minute:
        per_minute = RateLimitItemPerMinute(quota.requests_per_minute)
        found.append(Rule(per_minute, 1, "requests_per_minute", "requests"))
    for amount, window, name in [
        (quota.chars_per_day, RateLimitItemPerDay, "chars_per_day"),
        (quota.chars_per_month, RateLimitItemPerMonth, "chars_per_month"),
    ]:
        if chars and amount:
            found.append(Rule(window(amount), chars, name, "characters"))
    return found


class QuotaLimiter:
    """Counters for every subject (``key:<id>`` or ``ip:<address>``) in one ``limits`` storage."""

    def __init__(self, storage_url: str, prefix: str = "voxserve") -> None:
        options: dict[str, Any] = {}
        if storage_url.startswith(("redis://", "rediss://")):
            storage_url = "async+" + storage_url
            options = {"implementation": "redispy", "key_prefix": "{" + prefix + "}:limits"}
        elif storage_url == "memory://":
            storage_url = "async+memory://"
        self.storage: Any = storage_from_string(storage_url, **options)
        self._window = FixedWindowRateLimiter(self.storage)

    async def admit(self, subject: str, quota: Quota, chars: int = 0, stream: bool = False) -> Admitted:
        """Check every limit, then charge them all; RateLimited (nothing charged) if any would pass."""
        checks = rules(quota, chars)
        for rule in checks:
            if not await self._window.test(rule.item, subject, cost=rule.cost):
                raise await self._refusal(rule, subject)
        stream_key = await self._take_stream(subject, quota) if stream else None
        charged: list[Rule] = []
        for rule in checks:
            if not await self._window.hit(rule.item, subject, cost=rule.cost):
                charged.append(rule)  # a fixed window counts even a refused hit: take it back too
                await self._undo(charged, subject, stream_key)
                raise await self._refusal(rule, subject)
            charged.append(rule)
        return Admitted(await self._headers(checks[0], subject) if checks else {}, stream_key)

    async def release(self, admitted: Admitted) -> None:
        """Give back the stream slot (the stream ended, however it ended)."""
        if admitted.stream_key is not None:
            await self.storage.incr(admitted.stream_key, STREAM_SLOT_SECONDS, amount=-1)
            admitted.stream_key = None

    async def _take_stream(self, subject: str, quota: Quota) -> str | None:
        limit = quota.concurrent_streams
        if not limit:
            return None
        key = f"streams/{subject}"
        if await self.storage.incr(key, STREAM_SLOT_SECONDS) > limit:
            await self.storage.incr(key, STREAM_SLOT_SECONDS, amount=-1)
            raise RateLimited(
                f"this key (or address) may have at most {limit} at once (concurrent_streams); "
                "wait for one to end",
                limit=limit, remaining=0, reset=time.time() + 1, retry_after=1, param="concurrent_streams",
            )  # fmt: skip
        return key

    async def _undo(self, charged: list[Rule], subject: str, stream_key: str | None) -> None:
        for rule in charged:
            await self.storage.incr(rule.item.key_for(subject), rule.item.get_expiry(), amount=-rule.cost)
        await self.release(Admitted(stream_key=stream_key))

    async def _headers(self, rule: Rule, subject: str) -> dict[str, str]:
        stats = await self._window.get_window_stats(rule.item, subject)
        return {
            "X-RateLimit-Limit": str(rule.item.amount),
            "X-RateLimit-Remaining": str(stats.remaining),
            "X-RateLimit-Reset": str(int(stats.reset_time)),
        }

    async def _refusal(self, rule: Rule, subject: str) -> RateLimited:
        stats = await self._window.get_window_stats(rule.item, subject)
        wait = max(1, int(stats.reset_time - time.time() + 0.999))
        asked = f"this request needs {rule.cost} {rule.unit}; " if rule.cost > 1 else ""
        return RateLimited(
            f"{asked}{rule.item.amount} {rule.unit} per {rule.item.GRANULARITY.name} is the limit "
            f"({rule.name}) and {stats.remaining} remain; retry in {wait} s",
            limit=rule.item.amount,
            remaining=stats.remaining,
            reset=stats.reset_time,
            retry_after=wait,
            param=rule.name,
        )

    async def reset(self) -> None:
        """Forget every count (tests)."""
        await self.storage.reset()
