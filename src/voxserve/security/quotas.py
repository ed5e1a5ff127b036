"""Quotas and rate limits per key (or per client address), on the ``limits`` library's windows.

``limits`` gives the windows (their keys, lengths and expiries) and, for one
process, the storage. A request is charged against every limit that applies
to it in one step: all the counters go up, and if any passes its limit they
all go back down and the request is refused, so a refused request consumes
nothing. In Redis that step is one atomic script over ``limits``' own
fixed-window keys: replicas never race for the last unit, and a request
costs one round trip whatever its limits.

- requests per minute (every metered request), characters per day and per
  month (speech and jobs: the characters they ask to synthesize): fixed
  windows;
- concurrent streams (speech answers in progress): a counter taken and given
  back, with an expiry so a replica that dies cannot hold slots for ever.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItemPerDay, RateLimitItemPerMinute, RateLimitItemPerMonth

from voxserve.config import Quota
from voxserve.errors import RateLimited

STREAM_SLOT_SECONDS = 3600  # the longest a stream slot can outlive a replica that died holding it


@dataclass(frozen=True)
class Rule:
    """One limit of a quota as a counter: its key, window, cost for this request, and names."""

    key: str
    expiry: int
    cost: int
    limit: int
    name: str
    unit: str
    window: str

    def refusal(self, count: int, ttl: float) -> RateLimited:
        """``count``: what the counter held before this request."""
        remaining = max(0, self.limit - count)
        wait = max(1, int(ttl + 0.999))
        asked = f"this request needs {self.cost} {self.unit}; " if self.cost > 1 else ""
        if self.window:
            message = (f"{asked}{self.limit} {self.unit} per {self.window} is the limit ({self.name}) and "
                       f"{remaining} remain; retry in {wait} s")  # fmt: skip
        else:
            message = (f"this key (or address) may have at most {self.limit} at once ({self.name}); "
                       "wait for one to end")  # fmt: skip
        return RateLimited(
            message, limit=self.limit, remaining=remaining, reset=time.time() + wait, retry_after=wait,
            param=self.name,
        )  # fmt: skip


def rules(subject: str, quota: Quota, chars: int, stream: bool) -> list[Rule]:
    """The counters one request of ``chars`` characters is charged to, requests per minute first."""
    found = []
    windows = [
        (quota.requests_per_minute, 1, RateLimitItemPerMinute, "requests_per_minute", "requests"),
        (quota.chars_per_day if chars else None, chars, RateLimitItemPerDay, "chars_per_day", "characters"),
        (
            quota.chars_per_month if chars else None,
            chars,
            RateLimitItemPerMonth,
            "chars_per_month",
            "characters",
        ),
    ]
    for amount, cost, window, name, unit in windows:
        if amount:
            item = window(amount)
            granularity = item.GRANULARITY.name
            found.append(
                Rule(item.key_for(subject), item.get_expiry(), cost, amount, name, unit, granularity)
            )
    if stream and quota.concurrent_streams:
        found.append(Rule(f"streams/{subject}", STREAM_SLOT_SECONDS, 1, quota.concurrent_streams,
                          "concurrent_streams", "streams", ""))  # fmt: skip
    return found


@dataclass
class Admitted:
    """What passed: the request-rate headers, and the stream slot to give back (if one was taken)."""

    headers: dict[str, str] = field(default_factory=dict)
    stream_key: str | None = None


@dataclass(frozen=True)
class Charged:
    """A charge's outcome: the index of the rule that refused (or None), its count before the charge
    (or the first rule's after it), and that counter's time to live."""

    refused: int | None
    count: int
    ttl: float


class QuotaLimiter(ABC):
    """Counters for every subject (``key:<id>`` or ``ip:<address>``)."""

    async def admit(self, subject: str, quota: Quota, chars: int = 0, stream: bool = False) -> Admitted:
        """Charge every limit at once; RateLimited (nothing charged) if any would pass."""
        charges = rules(subject, quota, chars, stream)
        if not charges:
            return Admitted()
        outcome = await self._charge(charges)
        if outcome.refused is not None:
            raise charges[outcome.refused].refusal(outcome.count, outcome.ttl)
        first = charges[0]
        headers = {
            "X-RateLimit-Limit": str(first.limit),
            "X-RateLimit-Remaining": str(max(0, first.limit - outcome.count)),
            "X-RateLimit-Reset": str(int(time.time() + outcome.ttl)),
        }
        stream_key = charges[-1].key if charges[-1].name == "concurrent_streams" else None
        return Admitted(headers, stream_key)

    async def release(self, admitted: Admitted) -> None:
        """Give back the stream slot (the stream ended, however it ended)."""
        if admitted.stream_key is not None:
            key, admitted.stream_key = admitted.stream_key, None
            await self._give_back(key)

    @abstractmethod
    async def _charge(self, charges: Sequence[Rule]) -> Charged: ...

    @abstractmethod
    async def _give_back(self, key: str) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


class MemoryQuotas(QuotaLimiter):
    """One process's counts, in ``limits``' memory storage."""

    def __init__(self) -> None:
        from limits.aio.storage import MemoryStorage

        self.storage = MemoryStorage()

    async def _charge(self, charges: Sequence[Rule]) -> Charged:
        first = 0
        for index, rule in enumerate(charges):
            count = await self.storage.incr(rule.key, rule.expiry, amount=rule.cost)
            first = first or count
            if count > rule.limit:
                for done in charges[: index + 1]:
                    await self.storage.incr(done.key, done.expiry, amount=-done.cost)
                return Charged(index, count - rule.cost, await self._ttl(rule.key))
        return Charged(None, first, await self._ttl(charges[0].key))

    async def _ttl(self, key: str) -> float:
        return max(0.0, await self.storage.get_expiry(key) - time.time())

    async def _give_back(self, key: str) -> None:
        await self.storage.incr(key, STREAM_SLOT_SECONDS, amount=-1)

    async def close(self) -> None:
        """Nothing to release: the counts live in this process."""


#: KEYS: counters; ARGV: expiry, cost and limit of each. ``limits``' incr-and-expire for each, in
#: one step; past any limit every charge is taken back.
_CHARGE = """
local n = #KEYS
for i = 1, n do
    local expiry, cost, limit = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
    local current = redis.call('incrby', KEYS[i], cost)
    if current == cost then redis.call('expire', KEYS[i], expiry) end
    if current > limit then
        for j = 1, i do redis.call('decrby', KEYS[j], tonumber(ARGV[3 * j - 1])) end
        return {i, current - cost, redis.call('ttl', KEYS[i])}
    end
end
return {0, tonumber(redis.call('get', KEYS[1])), redis.call('ttl', KEYS[1])}
"""


class RedisQuotas(QuotaLimiter):
    """Counts shared by every replica, under ``limits``' key layout in Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        from voxserve.jobs.redis import redis_client

        self._redis = redis_client(url)
        self._prefix = "{" + prefix + "}:limits:"
        self._script: Any = self._redis.register_script(_CHARGE)

    async def _charge(self, charges: Sequence[Rule]) -> Charged:
        keys = [self._prefix + rule.key for rule in charges]
        args = [value for rule in charges for value in (rule.expiry, rule.cost, rule.limit)]
        refused, count, ttl = await self._script(keys=keys, args=args)
        return Charged(int(refused) - 1 if int(refused) else None, int(count), max(0.0, float(ttl)))

    async def _give_back(self, key: str) -> None:
        await self._redis.decr(self._prefix + key)

    async def close(self) -> None:
        await self._redis.aclose()


def open_limiter(url: str, prefix: str = "voxserve") -> QuotaLimiter:
    """``memory://`` for one process, ``redis://…`` for counts shared by replicas."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisQuotas(url, prefix)
    if url != "memory://":
        raise ValueError(f"limits.storage_url {url!r}: use memory:// or redis://host:port/db")
    return MemoryQuotas()
