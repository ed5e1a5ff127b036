"""One contract, two stores: SQLite in a temporary file and the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voxserve.errors import Conflict, EngineError
from voxserve.jobs import IdempotencyConflict, Job, JobNotFound, JobStatus, JobStore, Progress, request_hash
from voxserve.jobs.redis import RedisJobStore
from voxserve.jobs.sqlite import SQLiteJobStore

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        backend: JobStore = SQLiteJobStore(tmp_path / "jobs.db", poll_interval=0.05)
    else:
        prefix = "{voxserve-test-" + secrets.token_hex(4) + "}"
        backend = RedisJobStore(REDIS_URL, prefix=prefix, poll_interval=0.05)
    yield backend
    if isinstance(backend, RedisJobStore):
        keys = [key async for key in backend.redis.scan_iter(match=backend.prefix + "*")]
        if keys:
            await backend.redis.delete(*keys)
    await backend.close()


def make_job(text: str = "hello", priority: int = 0, **fields: object) -> tuple[Job, str]:
    """A job and its text, as the store takes them."""
    job = Job(
        id=f"job_{secrets.token_hex(6)}",
        request={"voice": None},
        name="out",
        priority=priority,
        request_hash=request_hash({"input": text}),
        **fields,  # type: ignore[arg-type]
    )
    return job, text


async def test_enqueue_get_roundtrip(store: JobStore) -> None:
    job, created = await store.enqueue(*make_job("a whole book", metadata={"book": "one"}))
    assert created
    loaded = await store.get(job.id)
    assert loaded is not None and loaded.to_dict() == job.to_dict()
    assert await store.text(job.id) == "a whole book"
    assert await store.get("job_missing") is None and await store.text("job_missing") is None


async def test_priority_then_fifo(store: JobStore) -> None:
    low1 = (await store.enqueue(*make_job("a", priority=1)))[0]
    high = (await store.enqueue(*make_job("b", priority=5)))[0]
    low2 = (await store.enqueue(*make_job("c", priority=1)))[0]
    order = [(await store.claim("w", 30)) for _ in range(3)]
    assert [j.id for j in order if j] == [high.id, low1.id, low2.id]
    assert await store.claim("w", 30) is None


async def test_claim_leases_and_counts_attempts(store: JobStore) -> None:
    job = (await store.enqueue(*make_job()))[0]
    claimed = await store.claim("worker-1", 30)
    assert claimed is not None and claimed.id == job.id
    assert claimed.status is JobStatus.RUNNING and claimed.lease_owner == "worker-1"
    assert claimed.attempts == 1 and claimed.started_at is not None


async def test_delayed_jobs_wait_for_run_at(store: JobStore) -> None:
    from voxserve.jobs.models import now

    await store.enqueue(*make_job(run_at=now() + 0.3))
    assert await store.claim("w", 30) is None
    await asyncio.sleep(0.35)
    assert await store.claim("w", 30) is not None


async def test_idempotency_same_request_same_job(store: JobStore) -> None:
    first, created = await store.enqueue(*make_job(idempotency_key="k1"))
    again, created_again = await store.enqueue(*make_job(idempotency_key="k1"))
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await store.enqueue(*make_job("different", idempotency_key="k1"))


async def test_concurrent_claims_never_share_a_job(store: JobStore) -> None:
    for i in range(30):
        await store.enqueue(*make_job(str(i)))
    claims = await asyncio.gather(*(store.claim(f"w{i}", 30) for i in range(40)))
    ids = [job.id for job in claims if job is not None]
    assert len(ids) == 30 and len(set(ids)) == 30


async def test_progress_and_finish_need_the_lease(store: JobStore) -> None:
    job = (await store.enqueue(*make_job()))[0]
    await store.claim("owner", 30)
    progress = Progress(segments_done=2, segments_total=5, bytes_done=96000)
    assert await store.record_progress(job.id, "intruder", progress) is None
    saved = await store.record_progress(job.id, "owner", progress)
    assert saved is not None and saved.progress.segments_done == 2
    assert await store.finish(job.id, "intruder", JobStatus.SUCCEEDED) is None
    done = await store.finish(job.id, "owner", JobStatus.SUCCEEDED)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.finished_at is not None


async def test_retry_requeues_after_a_delay_keeping_progress(store: JobStore) -> None:
    job = (await store.enqueue(*make_job()))[0]
    await store.claim("w", 30)
    await store.record_progress(job.id, "w", Progress(segments_done=3))
    retried = await store.retry(job.id, "w", 0.2, EngineError("engine down"))
    assert retried is not None and retried.status is JobStatus.QUEUED and retried.error_code == "engine_error"
    assert await store.claim("w", 30) is None
    await asyncio.sleep(0.25)
    again = await store.claim("w2", 30)
    assert again is not None and again.attempts == 2 and again.progress.segments_done == 3


async def test_expired_lease_is_requeued_then_failed_when_out_of_attempts(store: JobStore) -> None:
    job = (await store.enqueue(*make_job(max_attempts=2)))[0]
    await store.claim("dead-1", 0.05)
    await asyncio.sleep(0.1)
    assert [j.id for j in await store.requeue_expired()] == [job.id]
    second = await store.claim("dead-2", 0.05)
    assert second is not None and second.attempts == 2
    await asyncio.sleep(0.1)
    failed = (await store.requeue_expired())[0]
    assert failed.status is JobStatus.FAILED and failed.error_code == "worker_lost"


async def test_heartbeat_keeps_the_lease(store: JobStore) -> None:
    job = (await store.enqueue(*make_job()))[0]
    await store.claim("w", 0.2)
    for _ in range(3):
        await asyncio.sleep(0.1)
        assert await store.heartbeat(job.id, "w", 0.2) is not None
    assert await store.requeue_expired() == []


async def test_cancel_queued_and_running(store: JobStore) -> None:
    queued = (await store.enqueue(*make_job("a")))[0]
    assert (await store.cancel(queued.id)).status is JobStatus.CANCELED
    running = (await store.enqueue(*make_job("b")))[0]
    await store.claim("w", 30)
    flagged = await store.cancel(running.id)
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    with pytest.raises(JobNotFound):
        await store.cancel("job_nope")


async def test_list_newest_first_with_filter_and_pages(store: JobStore) -> None:
    jobs = [(await store.enqueue(*make_job(str(i))))[0] for i in range(5)]
    await store.cancel(jobs[1].id)
    page = await store.list_jobs(limit=2)
    assert [j.id for j in page] == [jobs[4].id, jobs[3].id]
    rest = await store.list_jobs(limit=10, before=page[-1].id)
    assert [j.id for j in rest] == [jobs[2].id, jobs[1].id, jobs[0].id]
    assert [j.id for j in await store.list_jobs(JobStatus.CANCELED)] == [jobs[1].id]


async def test_retention_removes_old_finished_jobs(store: JobStore) -> None:
    from voxserve.jobs.models import now

    old = (await store.enqueue(*make_job("old", idempotency_key="old-key")))[0]
    await store.cancel(old.id)
    kept = (await store.enqueue(*make_job("kept")))[0]
    assert await store.remove_finished_before(now() + 1) == [old.id]
    assert await store.get(old.id) is None and await store.get(kept.id) is not None
    _again, created = await store.enqueue(*make_job("old", idempotency_key="old-key"))
    assert created, "an expired job's idempotency key is free again"


async def test_watch_yields_changes_until_the_end(store: JobStore) -> None:
    job = (await store.enqueue(*make_job()))[0]

    async def work() -> None:
        await asyncio.sleep(0.05)
        await store.claim("w", 30)
        await store.record_progress(job.id, "w", Progress(segments_done=1, segments_total=2))
        await store.finish(job.id, "w", JobStatus.SUCCEEDED)

    task = asyncio.create_task(work())
    seen = [(j.status, j.progress.segments_done) async for j in store.watch(job.id, poll_interval=0.02)]
    await task
    assert seen[0] == (JobStatus.QUEUED, 0) and seen[-1] == (JobStatus.SUCCEEDED, 1)
    assert [s for s, _ in seen] == sorted([s for s, _ in seen], key=[*JobStatus].index)


async def test_a_job_that_is_finishing_cannot_be_canceled(store: JobStore) -> None:
    """Either the cancel lands before the worker claims the end (and the worker sees it), or it is a 409."""
    first = (await store.enqueue(*make_job("a")))[0]
    await store.claim("w", 30)
    assert await store.record_progress(first.id, "w", Progress(segments_done=1, finishing=True))
    with pytest.raises(Conflict, match="finishing"):
        await store.cancel(first.id)
    second = (await store.enqueue(*make_job("b")))[0]
    await store.claim("w", 30)
    await store.cancel(second.id)
    seen = await store.record_progress(second.id, "w", Progress(segments_done=1, finishing=True))
    assert seen is not None and seen.cancel_requested


async def test_a_job_stored_whose_answer_was_lost_is_found_not_refused(store: JobStore) -> None:
    """Redis wrote the job and was killed before it answered: the submission learns it was stored
    (a 503 would tell the client no job exists while one runs)."""
    if not isinstance(store, RedisJobStore):
        pytest.skip("SQLite answers in the same transaction")
    from redis.exceptions import ConnectionError as RedisConnectionError

    stored, text = make_job()
    other, _ = make_job("never stored")
    script = store._insert_script

    async def written_then_lost(args: list[str | float]) -> object:
        if args[1] == stored.id:
            await script(args=args)  # the job is written...
        raise RedisConnectionError("Connection reset by peer")  # ...and its answer lost

    store._insert_script = written_then_lost  # type: ignore[assignment]
    job, created = await store.enqueue(stored, text)
    assert created and job.id == stored.id and (await store.get(stored.id)) is not None
    with pytest.raises(RedisConnectionError):
        await store.enqueue(other, "never stored")  # not written: refused, after its deadline
    assert await store.get(other.id) is None
