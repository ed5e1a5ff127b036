"""Connections to Redis, shared by every store on it (jobs, keys, limits): one set of rules for when
to give up and what may be repeated.

A paused or partitioned Redis answers nothing: every call gives up after
:data:`STORE_TIMEOUT` (a 503 ``store_unavailable``). A command sent before
that may still run when Redis wakes, so a write that must not happen after
its sender gave up carries a deadline (:data:`WRITE_DEADLINE`), checked on
Redis's own clock (:data:`CLOCK`), and a write that may be sent twice is
made so the second does nothing.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError

#: The longest any store call waits for Redis.
STORE_TIMEOUT = 5.0
#: A deadline-bearing write that reaches Redis later than this after it was sent does nothing: its
#: sender gives up at :data:`STORE_TIMEOUT`, and the two seconds between allow for clocks that differ.
WRITE_DEADLINE = STORE_TIMEOUT - 2.0

#: Redis's own clock, in seconds.
CLOCK = """
local function clock()
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
"""


def redis_client(url: str) -> Redis:
    """A client for voxserve's stores: a connection the pool kept across a blip is stale, so one quick
    retry on a fresh one, not a 503. A timeout is not retried: the command may yet run, and every
    write that counts (a job, a charge, usage) is made safe to repeat or late, not repeated blindly."""
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2, supported_errors=(ConnectionError,))
    return Redis.from_url(
        url,
        decode_responses=True,
        retry=retry,
        socket_timeout=STORE_TIMEOUT,
        socket_connect_timeout=STORE_TIMEOUT,
    )
