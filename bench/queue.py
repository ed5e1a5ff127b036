"""Queue benchmarks: store throughput, dispatch latency, and memory of long jobs."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import secrets
import tempfile
import time
from pathlib import Path

from harness.texts import SHORT_TEXTS

from voxserve.config import JobSettings, Settings
from voxserve.engines.fake import FakeEngine
from voxserve.jobs import Job, JobStatus, JobStore, new_job_id
from voxserve.jobs.redis import RedisJobStore
from voxserve.jobs.sqlite import SQLiteJobStore
from voxserve.jobs.worker import Worker
from voxserve.pipeline import SpeechRequest
from voxserve.services import Services

REDIS_URL = "redis://127.0.0.1:6379/0"


def open_bench_store(kind: str, directory: Path, prefix: str | None = None) -> JobStore:
    if kind == "sqlite":
        return SQLiteJobStore(directory / "bench-jobs.db")
    return RedisJobStore(REDIS_URL, prefix=prefix or "{voxserve-bench-" + secrets.token_hex(4) + "}")


async def clear(store: JobStore) -> None:
    """Remove a benchmark's Redis keys (a SQLite store lives in a temporary directory)."""
    if isinstance(store, RedisJobStore):
        keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*")]
        for start in range(0, len(keys), 1000):
            await store.redis.delete(*keys[start : start + 1000])


def _job() -> Job:
    return Job(id=new_job_id(), request={}, name="bench")


async def _loops(store: JobStore, jobs: int, concurrency: int) -> tuple[float, float]:
    """``concurrency`` loops of enqueue → claim → finish; (start, end) wall-clock times."""
    per_loop = jobs // concurrency

    async def loop(worker: str) -> None:
        for _ in range(per_loop):
            await store.enqueue(_job(), "x")
            while (job := await store.claim(worker, 30)) is None:  # another process took ours
                await asyncio.sleep(0)
            await store.finish(job.id, worker, JobStatus.SUCCEEDED, known=job)

    started = time.time()
    await asyncio.gather(*(loop(f"w{i}") for i in range(concurrency)))
    return started, time.time()


def _process_share(kind: str, location: str, jobs: int, concurrency: int) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        store = open_bench_store(kind, Path(location), prefix=location)
        try:
            return await _loops(store, jobs, concurrency)
        finally:
            await store.close()

    return asyncio.run(run())


def throughput(kind: str, jobs: int, concurrency: int, processes: int = 1) -> float:
    """Jobs per second through enqueue → claim → finish, by ``processes`` sharing one queue."""
    directory = tempfile.mkdtemp()
    location = "{voxserve-bench-" + secrets.token_hex(4) + "}" if kind == "redis" else directory
    try:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            spans = pool.starmap(
                _process_share, [(kind, location, jobs // processes, concurrency)] * processes
            )
        done = (jobs // processes // concurrency) * concurrency * processes
        return done / (max(end for _, end in spans) - min(start for start, _ in spans))
    finally:
        store = open_bench_store(kind, Path(directory), prefix=location)
        asyncio.run(_clear_and_close(store))


async def _clear_and_close(store: JobStore) -> None:
    await clear(store)
    await store.close()


async def dispatch_latency(kind: str, samples: int) -> list[float]:
    """Milliseconds from enqueue to claim by an idle ``Worker`` (its real loop)."""
    directory = Path(tempfile.mkdtemp())
    store = open_bench_store(kind, directory)
    services = Services.build(
        Settings(data_dir=directory, default_engine="fake", cache_max_bytes=0), {"fake": FakeEngine()}, store
    )
    await services.load()
    worker = Worker(store, services.pipeline, services.files, JobSettings(poll_seconds=1.0))
    running = asyncio.create_task(worker.run())
    latencies = []
    try:
        for _ in range(samples):
            await asyncio.sleep(0.02)  # let the worker go idle
            job, _ = await services.jobs.submit(
                SpeechRequest(input="Hi.", response_format="pcm"), job_id=new_job_id()
            )
            while (current := await store.get(job.id)) is None or current.started_at is None:
                await asyncio.sleep(0.0005)
            latencies.append((current.started_at - current.created_at) * 1000)
    finally:
        await worker.stop()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await clear(store)
        await services.close()
    return latencies


def peak_rss_growth(chars: int) -> tuple[float, float, int]:
    """(RSS growth in MB, seconds, segments) of one job of ``chars`` characters, in this process."""
    text = ""
    while len(text) < chars:
        text += " ".join(SHORT_TEXTS) + "\n"
    text = text[:chars]

    async def run() -> tuple[float, float, int]:
        directory = Path(tempfile.mkdtemp())
        engine = FakeEngine(sample_rate=24000, seconds_per_word=0.05)
        services = Services.build(
            Settings(data_dir=directory, default_engine="fake", jobs={"workers": 0}, cache_max_bytes=0),
            {"fake": engine},
        )
        await services.load()
        await services.jobs.submit(
            SpeechRequest(input="Warm up.", response_format="wav"), job_id=new_job_id()
        )
        worker = Worker(services.store, services.pipeline, services.files, JobSettings(max_chars=chars))
        await _drain(worker)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        job, _ = await services.jobs.submit(
            SpeechRequest(input=text, response_format="wav"), job_id=new_job_id()
        )
        started = time.perf_counter()
        await _drain(worker)
        elapsed = time.perf_counter() - started
        done = await services.store.get(job.id)
        assert done is not None and done.status is JobStatus.SUCCEEDED, done
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        await services.close()
        return peak - baseline, elapsed, done.progress.segments_total

    return asyncio.run(run())


async def _drain(worker: Worker) -> None:
    """Run the worker until the queue is empty."""
    while (job := await worker.store.claim(worker.id, 30)) is not None:
        await worker.process(job)
