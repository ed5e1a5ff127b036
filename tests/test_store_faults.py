"""A Redis that stops answering mid-write: nothing is stored, charged or counted twice by a request
that was told it failed (a Redis of its own, paused with SIGSTOP)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from harness.redisproc import PrivateRedis

from tests.support.api import JOB_TEXT, assert_error, ready_client
from voxserve import redisconn
from voxserve.config import Quota, Settings
from voxserve.engines.fake import FakeEngine
from voxserve.jobs import redis as job_redis
from voxserve.security import quotas
from voxserve.security.quotas import RedisQuotas
from voxserve.security.store import RedisKeyStore
from voxserve.services import build_guard

TIMEOUT = 1.5  # the store's timeout in these tests (5 s in service): a paused Redis is a 503 this soon


@pytest.fixture
def paused_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    monkeypatch.setattr(redisconn, "STORE_TIMEOUT", TIMEOUT)
    for module in (job_redis, quotas):
        monkeypatch.setattr(module, "WRITE_DEADLINE", TIMEOUT - 1.0)
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def stored_jobs(server: PrivateRedis) -> list[str]:
    return sorted(server.client().scan_iter(match="*job:*"))


def test_a_submission_the_store_never_answered_leaves_no_job(
    paused_redis: PrivateRedis, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", default_engine="fake", jobs={"queue_url": paused_redis.url, "workers": 0}
    )
    with ready_client(settings, {"fake": FakeEngine(name="fake")}, raise_server_exceptions=False) as client:
        paused_redis.pause()
        started = time.monotonic()
        refused = client.post("/v1/jobs", json={"input": JOB_TEXT})
        waited = time.monotonic() - started
        paused_redis.resume()
        assert_error(refused, 503, "store_unavailable", None, "retry shortly")
        assert waited < TIMEOUT + 1.0, f"answered in {waited:.1f} s"
        time.sleep(0.3)  # the submission, held in Redis's socket, runs now: too late, it stores nothing
        assert stored_jobs(paused_redis) == [], "a 503 leaves no job to run"
        retried = client.post("/v1/jobs", json={"input": JOB_TEXT})
        assert retried.status_code == 202 and len(stored_jobs(paused_redis)) == 1


async def test_a_charge_that_arrives_after_its_sender_gave_up_charges_nothing(
    paused_redis: PrivateRedis,
) -> None:
    limiter = RedisQuotas(paused_redis.url, "faults")
    quota = Quota(chars_per_day=1000)
    await limiter.admit("key:a", quota, chars=100)
    paused_redis.pause()
    with pytest.raises(redis.TimeoutError):
        await limiter.admit("key:a", quota, chars=300)
    paused_redis.resume()
    time.sleep(0.3)
    assert await _remaining(limiter, quota) == 900, "the late charge of 300 did not count"
    await limiter.close()


async def _remaining(limiter: RedisQuotas, quota: Quota) -> int:
    """What the day's characters have left, read from the refusal of a charge too big to pass."""
    from voxserve.errors import RateLimited

    with pytest.raises(RateLimited) as refusal:
        await limiter.admit("key:a", quota, chars=10_000)
    assert refusal.value.remaining is not None
    return refusal.value.remaining


async def test_a_refund_applies_once_and_only_to_a_charge_that_was_made(paused_redis: PrivateRedis) -> None:
    limiter = RedisQuotas(paused_redis.url, "faults")
    quota = Quota(chars_per_day=1000)
    admitted = await limiter.admit("key:a", quota, chars=100)
    kept = await limiter.admit("key:a", quota, chars=50)
    await limiter.refund(admitted)
    await limiter.refund(admitted)
    assert await _remaining(limiter, quota) == 950
    await limiter.refund(kept)
    assert await _remaining(limiter, quota) == 1000
    await limiter.close()


async def test_usage_sent_again_after_a_timeout_is_counted_once(paused_redis: PrivateRedis) -> None:
    keys = RedisKeyStore(paused_redis.url, "{faults}:")
    paused_redis.pause()
    with pytest.raises(redis.TimeoutError):
        await keys.add_usage("k_1", {"characters": 40}, "batch-1")
    paused_redis.resume()
    await keys.add_usage("k_1", {"characters": 40}, "batch-1")  # the flush's retry, as the same batch
    await keys.add_usage("k_1", {"characters": 2}, "batch-2")
    assert await keys.usage("k_1") == {"characters": 42}
    await keys.close()


async def test_a_refund_leaves_a_window_that_began_after_its_charge_alone(paused_redis: PrivateRedis) -> None:
    limiter = RedisQuotas(paused_redis.url, "faults")
    quota = Quota(chars_per_day=1000)
    old = await limiter.admit("key:a", quota, chars=100)
    raw = paused_redis.client()
    (counter,) = raw.scan_iter(match="*limits:LIMITER*")  # the day's characters
    raw.pexpire(counter, 200)  # the day ends
    await asyncio.sleep(0.3)
    await limiter.admit("key:a", quota, chars=300)  # the next day's first charge
    await limiter.refund(old)
    assert await _remaining(limiter, quota) == 700, "yesterday's refund is not taken from today"
    await limiter.close()


#: Another process of the same deployment: it admits requests against the settings' limits store.
OTHER_REPLICA = """
import asyncio, json, sys
from voxserve.config import Quota, Settings
from voxserve.errors import RateLimited
from voxserve.security.quotas import open_limiter

async def main() -> None:
    settings = Settings(jobs={"queue_url": sys.argv[1]})
    limiter = open_limiter(settings.limits_backend)
    answers = []
    for _ in range(3):
        try:
            await limiter.admit("key:shared", Quota(requests_per_minute=5))
            answers.append("admitted")
        except RateLimited:
            answers.append("refused")
    await limiter.close()
    print(json.dumps(answers))

asyncio.run(main())
"""


async def test_a_queue_on_a_unix_socket_shares_one_quota_between_processes(tmp_path: Path) -> None:
    """``unix://`` is a Redis like ``redis://``: its quotas are counted there, so two processes
    (replicas, or a gateway and a worker) allow the quota once between them, not once each."""
    server = PrivateRedis(tmp_path / "r", unix_socket=True)
    server.start()
    try:
        settings = Settings(jobs={"queue_url": server.url})
        assert settings.limits_backend.kind == "redis" and settings.queue_backend.location == server.url
        guard = build_guard(settings.model_copy(update={"data_dir": tmp_path}))  # as `serve` builds it
        for _ in range(3):
            await guard.limiter.admit("key:shared", Quota(requests_per_minute=5))
        await guard.close()
        other = await asyncio.create_subprocess_exec(
            sys.executable, "-c", OTHER_REPLICA, server.url, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await other.communicate()
        assert json.loads(out) == ["admitted", "admitted", "refused"]
    finally:
        server.stop()
