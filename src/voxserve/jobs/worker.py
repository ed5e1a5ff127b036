"""Workers: take jobs from the store and run them through the one pipeline.

A worker holds a lease on each job it runs and renews it while it works. Audio
is appended to the job's PCM file (and its encoded stream, see
:mod:`voxserve.jobs.writer`) one finished segment at a time, and progress
(with the file's length) is saved after each, so a worker killed at any
moment loses at most the segment it was making: whoever takes the job up
next truncates the file to the last saved length and continues from there.

A store that fails (Redis unreachable, SQLite busy) never ends a worker: it
logs, marks itself unhealthy (``/readyz``, ``/metrics``), backs off and goes
on; a running job waits for the store to come back and then carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from voxserve import tracing
from voxserve.client.retry import backoff
from voxserve.config import JobSettings
from voxserve.errors import EngineError, InsufficientStorage, NotReady, VoxserveError
from voxserve.jobs.files import JobFiles
from voxserve.jobs.models import Job, JobStatus, Progress, now
from voxserve.jobs.output import JobOutput
from voxserve.jobs.store import JobStore
from voxserve.pipeline import Pipeline, SpeechRequest, Stats

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Failures worth another attempt: the engine may be back, or have memory, next time.
#: What a later attempt may get past: an engine's fault, and job storage full (old jobs expire, or are
#: deleted, and room comes back; the audio made so far is kept for the next attempt).
RETRYABLE: tuple[type[BaseException], ...] = (
    EngineError,
    NotReady,
    InsufficientStorage,
    TimeoutError,
    ConnectionError,
    OSError,
)
STORE_RETRY_CAP = 5.0  # seconds between tries while the store is down

#: Told what a job that succeeded made (its owner's usage): ``(owner, {"audio_seconds", "engine_seconds"})``.
UsageSink = Callable[[str | None, Mapping[str, float]], Awaitable[None]]


class JobCanceled(Exception):
    """The job was canceled while it ran; it stops at the next segment."""


class LeaseLost(Exception):
    """Another worker holds the job now (this one was too slow to renew its lease)."""


@dataclass
class WorkerHealth:
    """What ``/readyz`` and ``/metrics`` say of a worker: whether its last store call worked, and
    what it has done since it started (as arq's and saq's health records do)."""

    id: str
    healthy: bool = True
    store_errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float = field(default_factory=time.time)
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    canceled: int = 0


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """Runs up to ``settings.concurrency`` jobs at once until stopped."""

    def __init__(
        self,
        store: JobStore,
        pipeline: Pipeline,
        files: JobFiles,
        settings: JobSettings = JobSettings(),
        worker_id: str | None = None,
        usage: UsageSink | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.files = files
        self.settings = settings
        self._usage = usage
        self.metrics = pipeline.metrics
        self.id = worker_id or worker_name()
        self.health = WorkerHealth(self.id)
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; also puts back jobs whose worker died.

        A store error anywhere in the loop is logged and waited out with
        backoff; the loop itself never ends on one.
        """
        slots = asyncio.Semaphore(self.settings.concurrency)
        next_sweep = 0.0
        failures = 0
        while not self._stopping.is_set():
            try:
                if now() >= next_sweep:
                    await self.store.requeue_expired()
                    next_sweep = now() + self.settings.lease_seconds / 2
                await self._claim_one(slots)
                self._store_ok()
                failures = 0
            except self.store.errors as exc:
                failures += 1
                await self._store_down(exc, failures)

    async def _claim_one(self, slots: asyncio.Semaphore) -> None:
        await slots.acquire()
        try:
            job = (
                None
                if self._stopping.is_set()
                else await self.store.claim(self.id, self.settings.lease_seconds)
            )
        except BaseException:
            slots.release()
            raise
        if job is None:
            slots.release()
            await self.store.wait_for_work(self.settings.poll_seconds)
            return
        self.metrics.job_queue_wait.observe(max(0.0, now() - max(job.created_at, job.run_at)))
        task = asyncio.create_task(self.process(job), name=f"job {job.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda _: slots.release())

    def _store_ok(self) -> None:
        if not self.health.healthy:
            log.warning("worker %s: the job store answers again", self.id)
        self.health.healthy = True

    async def _store_down(self, exc: Exception, failures: int) -> None:
        """Record a store failure and wait before the next try."""
        self.health.healthy = False
        self.health.store_errors += 1
        self.health.last_error = f"{type(exc).__name__}: {exc}"
        self.health.last_error_at = time.time()
        delay = backoff(failures, 0.2, STORE_RETRY_CAP)
        log.warning(
            "worker %s: job store failed (%s); retrying in %.1f s", self.id, self.health.last_error, delay
        )
        await asyncio.sleep(delay)

    async def _persist(self, call: Callable[[], Awaitable[T]]) -> T:
        """A store write a running job depends on: retried until the store answers again."""
        failures = 0
        while True:
            try:
                result = await call()
            except self.store.errors as exc:
                failures += 1
                await self._store_down(exc, failures)
                continue
            self._store_ok()
            return result

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running jobs finish within ``grace``, then hand them back."""
        self._stopping.set()
        if self._running:
            _, pending = await asyncio.wait(self._running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def process(self, job: Job) -> None:
        """Run one claimed job to its end, keeping its lease alive meanwhile."""
        log.info("job %s started (attempt %d of %d)", job.id, job.attempts, job.max_attempts)
        keeper = asyncio.create_task(self._keep_lease(job.id, asyncio.current_task()))
        self.health.running += 1
        try:
            attributes: dict[str, tracing.Attribute] = {"job.id": job.id, "job.attempt": job.attempts}
            with tracing.current("job", **attributes):
                tracing.start("job.queue_wait", start_time=max(job.created_at, job.run_at)).end()
                await self._run(job)
        except JobCanceled:
            await asyncio.to_thread(self.files.remove, job.id)
            await self._end(job, JobStatus.CANCELED)
        except LeaseLost:
            log.warning("job %s: lease lost to another worker", job.id)
        except asyncio.CancelledError:
            if self._stopping.is_set():
                with contextlib.suppress(*self.store.errors):
                    await asyncio.shield(self.store.release(job.id, self.id))
                log.info("job %s handed back: worker stopping", job.id)
            raise
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            self.health.running -= 1
            keeper.cancel()

    async def _end(self, job: Job, status: JobStatus, error: VoxserveError | None = None) -> None:
        await asyncio.shield(self._persist(lambda: self.store.finish(job.id, self.id, status, error)))
        counts = {
            JobStatus.SUCCEEDED: "succeeded",
            JobStatus.FAILED: "failed",
            JobStatus.CANCELED: "canceled",
        }
        if status in counts:
            setattr(self.health, counts[status], getattr(self.health, counts[status]) + 1)
        self.metrics.jobs_ended.labels(status.value).inc()
        log.info("job %s %s%s", job.id, status.value, f": {error.message}" if error else "")

    async def _failed(self, job: Job, exc: Exception) -> None:
        error = exc if isinstance(exc, VoxserveError) else EngineError(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, RETRYABLE) and job.attempts < job.max_attempts:
            delay = backoff(job.attempts, self.settings.retry_base_seconds, self.settings.retry_cap_seconds)
            await asyncio.shield(self._persist(lambda: self.store.retry(job.id, self.id, delay, error)))
            self.health.retried += 1
            log.warning(
                "job %s attempt %d failed (%s); retrying in %.1f s", job.id, job.attempts, error, delay
            )
        else:
            if not isinstance(exc, VoxserveError):
                log.exception("job %s failed", job.id, exc_info=exc)
            # a failed job has no audio: its partial files only take disk
            await asyncio.to_thread(self.files.remove, job.id)
            await self._end(job, JobStatus.FAILED, error)

    async def _keep_lease(self, job_id: str, task: asyncio.Task[object] | None) -> None:
        """Renew the lease every third of its length; stop the job if it was lost."""
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                held = await self.store.heartbeat(job_id, self.id, self.settings.lease_seconds)
            except self.store.errors as exc:
                log.warning("job %s: lease not renewed, the store failed (%s)", job_id, exc)
                continue
            if held is None and task:
                task.cancel(LeaseLost.__name__)
                return

    async def _run(self, job: Job) -> None:
        text = await self._persist(lambda: self.store.text(job.id))
        if text is None:
            raise LeaseLost(job.id)  # deleted while it ran
        request = SpeechRequest.load(text, job.request)
        plan = await asyncio.to_thread(self.pipeline.plan, request, self.pipeline.planner.job)
        changed = plan.disagreement(job.decided)
        if changed:  # the gateway's and this worker's settings or engines differ: an operator's matter
            log.warning("job %s: planned otherwise when it was submitted (%s)", job.id, changed)
        output = JobOutput(self.files, job, plan, self.settings.disk_limit_bytes)
        progress = replace(job.progress, segments_total=len(plan.segments), chars_total=plan.chars)
        progress = await asyncio.to_thread(output.open, progress)
        stats = Stats(chars=plan.chars, words=True)  # for the job's captions
        began = time.time()
        try:
            async for index, audio in self.pipeline.segment_audio(plan, stats, start=progress.segments_done):
                written = await asyncio.to_thread(output.append, audio, stats.timeline[-1])
                bytes_done = progress.bytes_done + written
                progress = replace(
                    progress,
                    segments_done=index + 1,
                    bytes_done=bytes_done,
                    chars_done=min(plan.chars, progress.chars_done + len(plan.segments[index].text)),
                    audio_seconds=output.seconds(bytes_done),
                    finishing=index + 1 == len(plan.segments),
                )
                await self._save(job, progress)
                tracing.start("job.segment", start_time=began, index=index).end()
                began = time.time()
            if not progress.finishing:  # resumed after its last segment: claim the end now
                await self._save(job, replace(progress, finishing=True))
            await asyncio.to_thread(output.finish)
        except asyncio.CancelledError as exc:
            if exc.args == (LeaseLost.__name__,):
                raise LeaseLost(job.id) from exc
            raise
        finally:
            await asyncio.to_thread(output.close)
        await self._save(job, replace(progress, chars_done=plan.chars, finishing=True))
        await self._end(job, JobStatus.SUCCEEDED)
        if self._usage is not None:
            await self._usage(
                job.owner, {"audio_seconds": progress.audio_seconds, "engine_seconds": stats.elapsed}
            )

    async def _save(self, job: Job, progress: Progress) -> None:
        """Record progress as the lease holder; a cancel asked for before it stops the job here."""
        updated = await self._persist(lambda: self.store.record_progress(job.id, self.id, progress))
        if updated is None:
            raise LeaseLost(job.id)
        if updated.cancel_requested:
            raise JobCanceled(job.id)


async def run_workers(workers: list[Worker]) -> None:
    """Run several workers until cancelled, then stop them gracefully."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for worker in workers:
            await worker.stop()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
