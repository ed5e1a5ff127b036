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
- concurrent streams (speech answers in progress): leases. A stream holds a
  lease of :data:`STREAM_LEASE_SECONDS`, which its replica renews every third
  of that while the stream lasts and gives back when it ends. A replica that
  dies stops renewing, and its slots are free again within the lease: no
  counter that can drift below zero or outlive its holder. In Redis a lease
  is a member of one sorted set per subject, scored by its expiry on Redis's
  own clock (replicas' clocks may differ).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItemPerDay, RateLimitItemPerMinute, RateLimitItemPerMonth

from voxserve.config import Backend, Quota
from voxserve.errors import RateLimited, StoreUnavailable
from voxserve.redisconn import CLOCK, WRITE_DEADLINE, redis_client

log = logging.getLogger(__name__)

STREAM_LEASE_SECONDS = 15  # the longest a stream slot outlives a replica that died holding it


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
    lease: bool = False  # a slot held while something lasts (a stream), not a count in a window

    def refusal(self, count: int, ttl: float) -> RateLimited:
        """``count``: what the counter held before this request."""
        remaining = max(0, self.limit - count)
        wait = max(1, int(ttl + 0.999))
        asked = f"this request needs {self.cost} {self.unit}; " if self.cost > 1 else ""
        if self.window:
            message = (
                f"{asked}{self.limit} {self.unit} per {self.window} is the limit ({self.name}) and "
                f"{remaining} remain; retry in {wait} s"
            )
        else:
            message = (
                f"this key (or address) may have at most {self.limit} at once ({self.name}); "
                "wait for one to end"
            )
        return RateLimited(
            message,
            limit=self.limit,
            remaining=remaining,
            reset=time.time() + wait,
            retry_after=wait,
            param=self.name,
        )


def rules(subject: str, quota: Quota, chars: int, stream: bool, request: bool = True) -> list[Rule]:
    """The counters one request of ``chars`` characters is charged to, requests per minute first
    (``request`` False: only its characters, a sentence of a text stream that was counted once)."""
    found = []
    windows = [
        (
            quota.requests_per_minute if request else None,
            1,
            RateLimitItemPerMinute,
            "requests_per_minute",
            "requests",
        ),
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
        found.append(
            Rule(
                f"streams/{subject}",
                STREAM_LEASE_SECONDS,
                1,
                quota.concurrent_streams,
                "concurrent_streams",
                "streams",
                "",
                lease=True,
            )
        )
    return found


@dataclass(frozen=True)
class Lease:
    """A stream slot: the subject's set of leases, and this one's name in it."""

    key: str
    id: str


@dataclass
class Admitted:
    """What passed: the request-rate headers, the stream slot to give back (if one was taken), and
    what was counted, to refund once if the request is not carried out after all."""

    headers: dict[str, str] = field(default_factory=dict)
    lease: Lease | None = None
    charge_id: str = ""
    counted: tuple[tuple[Rule, float], ...] = ()  # each counter charged, and which window of it


@dataclass(frozen=True)
class Charged:
    """A charge's outcome: the index of the rule that refused (or None), its count before the charge
    (or the first rule's after it), and that counter's time to live; when it passed, the window each
    counter was charged in (its expiry: a window that ended and began again has another)."""

    refused: int | None
    count: int
    ttl: float
    windows: tuple[float, ...] = ()


class QuotaLimiter(ABC):
    """Counters and leases for every subject (``key:<id>`` or ``ip:<address>``)."""

    #: What the backend raises when it cannot be reached.
    errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._held: set[Lease] = set()

    async def admit(
        self, subject: str, quota: Quota, chars: int = 0, stream: bool = False, request: bool = True
    ) -> Admitted:
        """Charge every limit at once; RateLimited (nothing charged) if any would pass."""
        charges = rules(subject, quota, chars, stream, request)
        if not charges:
            return Admitted()
        charge_id = uuid.uuid4().hex  # names the charge (once only, however often it is sent) and its lease
        outcome = await self._charge(charges, charge_id)
        if outcome.refused is not None:
            raise charges[outcome.refused].refusal(outcome.count, outcome.ttl)
        first = charges[0]
        headers = {
            "X-RateLimit-Limit": str(first.limit),
            "X-RateLimit-Remaining": str(max(0, first.limit - outcome.count)),
            "X-RateLimit-Reset": str(int(time.time() + outcome.ttl)),
        }
        lease = next((Lease(rule.key, charge_id) for rule in charges if rule.lease), None)
        if lease is not None:
            self._held.add(lease)
        counters = [rule for rule in charges if not rule.lease]
        return Admitted(headers, lease, charge_id, tuple(zip(counters, outcome.windows, strict=True)))

    async def refund(self, admitted: Admitted, characters_only: bool = False) -> None:
        """Take back what a charge counted (its request was a replay, or was never stored), once; only
        its characters when ``characters_only``. A counter whose window has since ended is left alone:
        the window it is in now was not charged."""
        counted = [
            (rule, window)
            for rule, window in admitted.counted
            if not characters_only or rule.unit == "characters"
        ]
        if counted:
            admitted.counted = ()
            await self._refund(admitted.charge_id, counted)

    async def release(self, admitted: Admitted) -> None:
        """Give back the stream slot (the stream ended, however it ended)."""
        if admitted.lease is not None:
            lease, admitted.lease = admitted.lease, None
            self._held.discard(lease)
            await self._give_back(lease)

    async def renew(self) -> None:
        """Extend every lease this process holds by :data:`STREAM_LEASE_SECONDS` from now."""
        if self._held:
            await self._renew(list(self._held))

    async def keep_leases(self, interval: float = STREAM_LEASE_SECONDS / 3) -> None:
        """Renew held leases every ``interval`` seconds for as long as the service runs; a store that
        fails is retried at the next interval (leases outlast two misses)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
            except self.errors as exc:
                log.warning("stream leases not renewed: %s", exc)

    @abstractmethod
    async def _charge(self, charges: Sequence[Rule], charge_id: str) -> Charged: ...

    @abstractmethod
    async def _refund(self, charge_id: str, counted: Sequence[tuple[Rule, float]]) -> None: ...

    @abstractmethod
    async def _renew(self, leases: Sequence[Lease]) -> None: ...

    @abstractmethod
    async def _give_back(self, lease: Lease) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


class MemoryQuotas(QuotaLimiter):
    """One process's counts, in ``limits``' memory storage."""

    def __init__(self) -> None:
        from limits.aio.storage import MemoryStorage

        super().__init__()
        self.storage = MemoryStorage()
        self.leases: dict[str, dict[str, float]] = {}  # subject's key -> lease id -> expiry (monotonic)

    def _live(self, key: str) -> dict[str, float]:
        clock = time.monotonic()
        held = {lease: until for lease, until in self.leases.get(key, {}).items() if until > clock}
        self.leases[key] = held
        return held

    async def _charge(self, charges: Sequence[Rule], charge_id: str) -> Charged:
        # One task runs this to the end between awaits of a memory store: no other charge interleaves
        # with the leases, and counters are undone if a later rule refuses.
        first = 0
        for index, rule in enumerate(charges):
            if rule.lease:
                held = self._live(rule.key)
                if len(held) >= rule.limit:
                    await self._undo(charges[:index], charge_id)
                    return Charged(index, len(held), rule.expiry)
                held[charge_id] = time.monotonic() + rule.expiry
                first = first or len(held)
                continue
            count = await self.storage.incr(rule.key, rule.expiry, amount=rule.cost)
            first = first or count
            if count > rule.limit:
                await self._undo(charges[: index + 1], charge_id)
                return Charged(index, count - rule.cost, await self._ttl(rule.key))
        head = charges[0]
        windows = tuple([await self.storage.get_expiry(rule.key) for rule in charges if not rule.lease])
        return Charged(None, first, head.expiry if head.lease else await self._ttl(head.key), windows)

    async def _undo(self, charges: Sequence[Rule], charge_id: str) -> None:
        for rule in charges:
            if rule.lease:
                self.leases.get(rule.key, {}).pop(charge_id, None)
            else:
                await self.storage.incr(rule.key, rule.expiry, amount=-rule.cost)

    async def _ttl(self, key: str) -> float:
        return max(0.0, await self.storage.get_expiry(key) - time.time())

    async def _refund(self, charge_id: str, counted: Sequence[tuple[Rule, float]]) -> None:
        for rule, window in counted:
            held = await self.storage.get(rule.key)
            if held > 0 and await self.storage.get_expiry(rule.key) == window:
                await self.storage.incr(rule.key, rule.expiry, amount=-min(held, rule.cost))

    async def _renew(self, leases: Sequence[Lease]) -> None:
        until = time.monotonic() + STREAM_LEASE_SECONDS
        for lease in leases:
            held = self.leases.get(lease.key, {})
            if lease.id in held:
                held[lease.id] = until

    async def _give_back(self, lease: Lease) -> None:
        self.leases.get(lease.key, {}).pop(lease.id, None)

    async def close(self) -> None:
        """Nothing to release: the counts live in this process."""


#: How long a charge is remembered: its repeats are not charged again, and a refund finds it.
CHARGE_RECORD_SECONDS = 3600

#: KEYS[1]: the charge's record, then counters and lease sets; ARGV[1]: the charge's id (its lease's
#: name), ARGV[2]: its deadline, then expiry, cost, limit and kind of each. ``limits``'
#: incr-and-expire for each counter, a lease added to each set with room, in one step; past any limit
#: every charge is taken back. A charge sent again (a retry) answers as the first did; one that
#: arrives after its deadline charges nothing ({-1}).
_CHARGE = (
    CLOCK
    + """
local lease, now, n = ARGV[1], clock(), #KEYS
local done = redis.call('get', KEYS[1])
if done then return cjson.decode(done) end
if now > tonumber(ARGV[2]) then return {-1, 0, 0} end
local function rule(i)
    local at = 4 * i - 4
    return tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), ARGV[at + 3] == 'lease'
end
local function undo(upto)
    for j = 2, upto do
        local _, cost, _, leased = rule(j)
        if leased then redis.call('zrem', KEYS[j], lease) else redis.call('decrby', KEYS[j], cost) end
    end
end
local counts = {}
for i = 2, n do
    local expiry, cost, limit, leased = rule(i)
    if leased then
        redis.call('zremrangebyscore', KEYS[i], '-inf', now)
        local held = redis.call('zcard', KEYS[i])
        if held >= limit then
            undo(i - 1)
            return {i, held, expiry}
        end
        redis.call('zadd', KEYS[i], now + expiry, lease)
        redis.call('expire', KEYS[i], expiry + 1)
        counts[i] = held + 1
    else
        local current = redis.call('incrby', KEYS[i], cost)
        if current == cost then redis.call('expire', KEYS[i], expiry) end
        if current > limit then
            undo(i)
            return {i, current - cost, redis.call('ttl', KEYS[i])}
        end
        counts[i] = current
    end
end
local charged = {0, counts[2], redis.call('ttl', KEYS[2])}
for i = 2, n do
    local _, _, _, leased = rule(i)
    if not leased then table.insert(charged, redis.call('pexpiretime', KEYS[i])) end
end
redis.call('set', KEYS[1], cjson.encode(charged), 'EX', tonumber(ARGV[3]))
return charged
"""
)

#: KEYS[1]: the charge's record, then its counters; ARGV: the cost and window of each. Only a charge
#: that was made, once (the record is the proof, and it is deleted), and only in the window it was
#: made in.
_REFUND = """
if redis.call('del', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do
    local held = tonumber(redis.call('get', KEYS[i]))
    local cost, window = tonumber(ARGV[2 * i - 3]), tonumber(ARGV[2 * i - 2])
    if held and held > 0 and redis.call('pexpiretime', KEYS[i]) == window then
        redis.call('decrby', KEYS[i], math.min(held, cost))
    end
end
return 1
"""

#: KEYS: lease sets; ARGV: each lease's id, then the lease length. Leases already given up (expired
#: and taken by another stream) stay given up.
_RENEW = (
    CLOCK
    + """
local expires = clock() + tonumber(ARGV[#ARGV])
for i = 1, #KEYS do
    if redis.call('zadd', KEYS[i], 'XX', 'CH', expires, ARGV[i]) == 1 then
        redis.call('expire', KEYS[i], tonumber(ARGV[#ARGV]) + 1)
    end
end
return 1
"""
)


class RedisQuotas(QuotaLimiter):
    """Counts shared by every replica, under ``limits``' key layout in Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        from redis.exceptions import RedisError

        super().__init__()
        self.errors = (RedisError, OSError)
        self._redis = redis_client(url)
        self._prefix = "{" + prefix + "}:limits:"
        self._script: Any = self._redis.register_script(_CHARGE)
        self._renew_script: Any = self._redis.register_script(_RENEW)
        self._refund_script: Any = self._redis.register_script(_REFUND)

    def _record(self, charge_id: str) -> str:
        return self._prefix + "charge:" + charge_id

    async def _charge(self, charges: Sequence[Rule], charge_id: str) -> Charged:
        keys = [self._record(charge_id), *(self._prefix + rule.key for rule in charges)]
        kinds = [(r.expiry, r.cost, r.limit, "lease" if r.lease else "counter") for r in charges]
        deadline = time.time() + WRITE_DEADLINE
        args = [charge_id, deadline, CHARGE_RECORD_SECONDS, *(v for k in kinds for v in k)]
        refused, count, ttl, *windows = (int(value) for value in await self._script(keys=keys, args=args))
        if refused < 0:
            raise StoreUnavailable("the limits store answered too late; nothing was charged, retry shortly")
        return Charged(
            refused - 2 if refused else None, count, max(0.0, float(ttl)), tuple(map(float, windows))
        )

    async def _refund(self, charge_id: str, counted: Sequence[tuple[Rule, float]]) -> None:
        keys = [self._record(charge_id), *(self._prefix + rule.key for rule, _ in counted)]
        await self._refund_script(
            keys=keys, args=[v for rule, window in counted for v in (rule.cost, int(window))]
        )

    async def _renew(self, leases: Sequence[Lease]) -> None:
        keys = [self._prefix + lease.key for lease in leases]
        await self._renew_script(keys=keys, args=[*(lease.id for lease in leases), STREAM_LEASE_SECONDS])

    async def _give_back(self, lease: Lease) -> None:
        await self._redis.zrem(self._prefix + lease.key, lease.id)

    async def close(self) -> None:
        await self._redis.aclose()


def open_limiter(backend: Backend, prefix: str = "voxserve") -> QuotaLimiter:
    """Counts in ``backend`` (``Settings.limits_backend``): Redis, shared by replicas, or this process."""
    if backend.kind == "redis":
        return RedisQuotas(backend.location, prefix)
    return MemoryQuotas()
