"""What keys and quotas add to a request: authenticate (the key read from the store and checked) plus
admit (every limit charged at once, or refused) plus the usage count, timed as a request runs them
before its first byte. The stream slot is given back after the answer, in a task of its own: it is
not on the request's path and not timed.

Two set-ups: the embedded one (keys in SQLite, counts in memory) and the shared one (keys and counts
in Redis, as several replicas run). Each request uses a key with a request rate, daily and monthly
character quotas and a stream limit, so every rule is charged. The process switches threads every
millisecond, as ``voxserve serve`` does (``switch_interval``).
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from voxserve.config import Quota, Settings
from voxserve.security.admin import KeyAdmin
from voxserve.security.guard import Guard
from voxserve.services import build_guard

QUOTA = Quota(
    requests_per_minute=10**9, chars_per_day=10**12, chars_per_month=10**12, concurrent_streams=10**6
)


@dataclass
class Timing:
    setup: str
    p50_ms: float
    p99_ms: float


async def _measure(settings: Settings, requests: int) -> tuple[float, float]:
    guard: Guard = build_guard(settings)
    try:
        _, token = await KeyAdmin(guard.keys, settings).create("bench", ("speech",), None, QUOTA)
        headers = {"authorization": f"Bearer {token}"}
        times = []
        for _ in range(requests + 20):
            started = time.perf_counter()
            principal = await guard.authenticate("127.0.0.1", headers)
            admitted = await guard.admit(principal, chars=200, stream=True)
            await guard.record(principal, {"requests.200": 1})
            times.append(time.perf_counter() - started)
            await guard.limiter.release(admitted)
        times = sorted(times[20:])  # the first ones open connections
        return statistics.median(times), times[int(len(times) * 0.99) - 1]
    finally:
        await guard.close()


def added_latency(requests: int = 2000) -> list[Timing]:
    sys.setswitchinterval(Settings().switch_interval)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        embedded = Settings(data_dir=Path(directory), auth={"enabled": True})
        prefix = "voxserve-bench-" + secrets.token_hex(4)
        jobs = {"queue_url": "redis://127.0.0.1:6379/0", "queue_prefix": prefix}
        shared = Settings(data_dir=Path(directory), auth={"enabled": True}, jobs=jobs)
        for label, settings in [
            ("keys in SQLite, counts in memory", embedded),
            ("keys and counts in Redis", shared),
        ]:
            p50, p99 = asyncio.run(_measure(settings, requests))
            results.append(Timing(label, p50 * 1000, p99 * 1000))
        _forget(prefix)
    return results


def _forget(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(match="{" + prefix + "}*"))
    if keys:
        client.delete(*keys)
