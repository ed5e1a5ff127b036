"""voxserve's job queue next to saq and arq, in one harness, on the same Redis.

Each round, for each queue: the same N no-op jobs are enqueued one after another by this process
(each call timed), then one worker process, started on the full queue at concurrency 8, drains
them (from the moment its loop starts until the N-th job has run); then, with that worker idle,
jobs are sent one at a time and each one's dispatch latency is read from the queue's own record
(enqueued → started, as the queue stamps them). Rounds alternate the queues, so a slow moment of
the machine falls on all three.

voxserve's no-op job is its real worker loop (claim with a lease, the lease keeper, finish) with
the synthesis left out; saq's and arq's are a coroutine that returns, with each library's defaults
otherwise (arq polls its queue every 0.5 s: what its users get).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

from voxserve.config import JobSettings, Settings
from voxserve.engines.fake import FakeEngine
from voxserve.jobs import Job, JobStatus, new_job_id
from voxserve.jobs.redis import RedisJobStore
from voxserve.jobs.worker import Worker
from voxserve.services import Services

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
QUEUES = ("voxserve", "saq", "arq")
CONCURRENCY = 8


@dataclass(frozen=True)
class Round:
    """One queue's figures in one round."""

    enqueue_seconds: list[float]  # each enqueue call
    drain_seconds: float  # the worker's loop start → the N-th job run
    dispatch_seconds: list[float]  # enqueued → started, one job at a time to an idle worker

    @property
    def enqueued_per_second(self) -> float:
        return len(self.enqueue_seconds) / sum(self.enqueue_seconds)

    @property
    def drained_per_second(self) -> float:
        return len(self.enqueue_seconds) / self.drain_seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


# --- the worker process: one queue's worker, told how many jobs to expect ---------------------


class _Counter:
    """Counts the jobs the worker has run: the drain ends at ``drain``, the process at ``total``."""

    def __init__(self, drain: int, total: int) -> None:
        self.done = 0
        self.drain, self.total = drain, total
        self.drained_at = 0.0
        self.finished = asyncio.Event()

    def ran(self) -> None:
        self.done += 1
        if self.done == self.drain:
            self.drained_at = time.perf_counter()
        if self.done >= self.total:
            self.finished.set()


_counter = _Counter(0, 0)  # this worker process's, set by work()


async def noop(ctx: Any) -> None:
    """saq's and arq's job: nothing but being counted."""
    _counter.ran()


class _NoopWorker(Worker):
    """voxserve's worker loop with the synthesis left out: the job ends as soon as it has started."""

    async def _run(self, job: Job) -> None:
        _counter.ran()
        await self._end(job, JobStatus.SUCCEEDED)


async def _voxserve_worker(name: str) -> Callable[[], Awaitable[None]]:
    store = RedisJobStore(REDIS_URL, prefix=name)
    services = Services.build(
        Settings(data_dir=Path(tempfile.mkdtemp()), default_engine="fake", cache_max_bytes=0),
        {"fake": FakeEngine()},
        store,
    )
    worker = _NoopWorker(store, services.pipeline, services.files, JobSettings(concurrency=CONCURRENCY))
    running = asyncio.create_task(worker.run())

    async def stop() -> None:
        await worker.stop()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await services.close()

    return stop


async def _saq_worker(name: str) -> Callable[[], Awaitable[None]]:
    import saq

    queue = saq.Queue.from_url(REDIS_URL, name=name)
    await queue.connect()
    worker = saq.Worker(queue, functions=[noop], concurrency=CONCURRENCY)
    running = asyncio.create_task(worker.start())

    async def stop() -> None:
        await worker.stop()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await queue.disconnect()

    return stop


async def _arq_worker(name: str) -> Callable[[], Awaitable[None]]:
    import arq
    from arq.connections import RedisSettings

    worker = arq.Worker(
        functions=[noop],
        queue_name=name,
        redis_settings=RedisSettings(REDIS_HOST, REDIS_PORT),
        max_jobs=CONCURRENCY,
        handle_signals=False,
    )
    running = asyncio.create_task(worker.async_run())

    async def stop() -> None:
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)  # the last results written
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
            await worker.close()

    return stop


_WORKERS = {"voxserve": _voxserve_worker, "saq": _saq_worker, "arq": _arq_worker}


def work(queue: str, name: str, drain: int, total: int, drained: ProcessEvent, results: Any) -> None:
    """A worker process: run ``queue``'s worker until ``total`` jobs have run; report the drain time."""
    logging.disable(logging.INFO)

    async def run() -> float:
        global _counter
        _counter = _Counter(drain, total)
        started = time.perf_counter()
        stop = await _WORKERS[queue](name)
        while not _counter.drained_at:
            await asyncio.sleep(0.001)
        drained.set()
        await _counter.finished.wait()
        await stop()
        return _counter.drained_at - started

    results.put(asyncio.run(run()))


# --- this process: enqueue, and read when each job started ------------------------------------


class _Client:
    """Enqueues no-op jobs on one queue and reads back when each was enqueued and started."""

    def __init__(self, queue: str, name: str) -> None:
        self.queue, self.name = queue, name
        self.sent: list[str] = []

    async def __aenter__(self) -> _Client:
        if self.queue == "voxserve":
            self.store = RedisJobStore(REDIS_URL, prefix=self.name)
        elif self.queue == "saq":
            import saq

            self.saq = saq.Queue.from_url(REDIS_URL, name=self.name)
            await self.saq.connect()
        else:
            from arq.connections import RedisSettings, create_pool

            self.arq = await create_pool(RedisSettings(REDIS_HOST, REDIS_PORT), default_queue_name=self.name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.queue == "voxserve":
            await self.store.close()
        elif self.queue == "saq":
            await self.saq.disconnect()
        else:
            await self.arq.aclose()

    async def enqueue(self) -> None:
        key = new_job_id() if self.queue == "voxserve" else f"{self.name}-{len(self.sent)}"
        if self.queue == "voxserve":
            await self.store.enqueue(Job(id=key, request={}, name="noop"), "x")
        elif self.queue == "saq":
            await self.saq.enqueue("noop", key=key)
        else:
            await self.arq.enqueue_job("noop", _job_id=key)
        self.sent.append(key)

    async def dispatch_seconds(self, count: int) -> list[float]:
        """Enqueued → started of the last ``count`` jobs sent, from the queue's own record."""
        if self.queue == "voxserve":
            jobs = [await self.store.get(key) for key in self.sent[-count:]]
            return [job.started_at - job.created_at for job in jobs if job and job.started_at]
        if self.queue == "saq":
            found = [await self.saq.job(key) for key in self.sent[-count:]]
            return [(job.started - job.queued) / 1000 for job in found if job and job.started]
        from arq.jobs import Job as ArqJob

        seconds = []
        for key in self.sent[-count:]:
            info = await ArqJob(key, self.arq, _queue_name=self.name).result_info()
            if info is not None:
                seconds.append((info.start_time - info.enqueue_time).total_seconds())
        return seconds


async def _clear(name: str) -> None:
    """Remove every key a round made (each queue's keys carry the round's name)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{name}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


def one_round(queue: str, jobs: int, samples: int) -> Round:
    """One queue through enqueue, drain and dispatch; its keys removed afterwards."""
    name = f"vxbench{secrets.token_hex(4)}"
    if queue == "voxserve":
        name = "{" + name + "}"
    context = multiprocessing.get_context("spawn")
    drained, results = context.Event(), context.Queue()

    async def run() -> Round:
        async with _Client(queue, name) as client:
            enqueue_seconds = []
            for _ in range(jobs):
                started = time.perf_counter()
                await client.enqueue()
                enqueue_seconds.append(time.perf_counter() - started)
            worker = context.Process(target=work, args=(queue, name, jobs, jobs + samples, drained, results))
            worker.start()
            while not drained.is_set():
                if not worker.is_alive():
                    raise RuntimeError(f"{queue}'s worker process ended (exit {worker.exitcode})")
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the last jobs finish; the worker goes idle
            for _ in range(samples):
                await client.enqueue()
                await asyncio.sleep(0.02)
            drain_seconds = await asyncio.to_thread(results.get, True, 120)
            await asyncio.to_thread(worker.join, 30)
            dispatch = await client.dispatch_seconds(samples)
        return Round(enqueue_seconds, drain_seconds, dispatch)

    try:
        return asyncio.run(run())
    finally:
        asyncio.run(_clear(name.strip("{}")))


def compare(jobs: int, samples: int, rounds: int) -> dict[str, list[Round]]:
    """``rounds`` rounds, the queues alternating within each."""
    figures: dict[str, list[Round]] = {queue: [] for queue in QUEUES}
    for _ in range(rounds):
        for queue in QUEUES:
            figures[queue].append(one_round(queue, jobs, samples))
    return figures


def summary(rounds: list[Round]) -> dict[str, float]:
    """The median round's rates, and latencies over every round's samples, in ms."""
    enqueue = [s for r in rounds for s in r.enqueue_seconds]
    dispatch = [s for r in rounds for s in r.dispatch_seconds]
    return {
        "enqueue_rate": statistics.median(r.enqueued_per_second for r in rounds),
        "enqueue_p50": percentile(enqueue, 0.5) * 1000,
        "enqueue_p99": percentile(enqueue, 0.99) * 1000,
        "drain_rate": statistics.median(r.drained_per_second for r in rounds),
        "dispatch_p50": percentile(dispatch, 0.5) * 1000,
        "dispatch_p99": percentile(dispatch, 0.99) * 1000,
    }
