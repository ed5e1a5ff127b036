"""Workers: take jobs from the store and run them through the one pipeline.

A worker holds a lease on each job it runs and renews it while it works. Audio
is appended to the job's PCM file one finished segment at a time, and
progress (with the file's length) is saved after each, so a worker killed at
any moment loses at most the segment it was making: whoever takes the job up
next truncates the file to the last saved length and continues from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass, replace
from pathlib import Path

from voxserve.audio import StreamEncoder, to_s16le
from voxserve.errors import EngineError, NotReady, VoxserveError
from voxserve.jobs.files import JobFiles
from voxserve.jobs.models import Job, JobStatus, now
from voxserve.jobs.store import JobStore
from voxserve.pipeline import Pipeline, Plan, SpeechRequest, Stats
from voxserve.retry import backoff

log = logging.getLogger(__name__)

#: Failures worth another attempt: the engine may be back, or have memory, next time.
RETRYABLE: tuple[type[BaseException], ...] = (EngineError, NotReady, TimeoutError, ConnectionError, OSError)
ENCODE_BLOCK = 48000  # bytes of s16le read per step when encoding the final file (1 s at 24 kHz)


class JobCanceled(Exception):
    """The job was canceled while it ran; it stops at the next segment."""


class LeaseLost(Exception):
    """Another worker holds the job now (this one was too slow to renew its lease)."""


@dataclass(frozen=True)
class WorkerSettings:
    lease_seconds: float = 30.0
    poll_interval: float = 0.5
    concurrency: int = 1
    max_chars: int = 1_000_000
    retry_base: float = 1.0
    retry_cap: float = 60.0


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """Runs up to ``settings.concurrency`` jobs at once until stopped."""

    def __init__(
        self,
        store: JobStore,
        pipeline: Pipeline,
        files: JobFiles,
        settings: WorkerSettings = WorkerSettings(),
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.files = files
        self.settings = settings
        self.id = worker_id or worker_name()
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Claim and run jobs until ``stop()``; also puts back jobs whose worker died."""
        slots = asyncio.Semaphore(self.settings.concurrency)
        next_sweep = 0.0
        while not self._stopping.is_set():
            if now() >= next_sweep:
                await self.store.requeue_expired()
                next_sweep = now() + self.settings.lease_seconds / 2
            await slots.acquire()
            job = (
                None
                if self._stopping.is_set()
                else await self.store.claim(self.id, self.settings.lease_seconds)
            )
            if job is None:
                slots.release()
                await self.store.wait_for_work(self.settings.poll_interval)
                continue
            task = asyncio.create_task(self.process(job), name=f"job {job.id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: slots.release())

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
        try:
            await self._run(job)
        except JobCanceled:
            self.files.remove(job.id)
            await self._end(job, JobStatus.CANCELED)
        except LeaseLost:
            log.warning("job %s: lease lost to another worker", job.id)
        except asyncio.CancelledError:
            if self._stopping.is_set():
                await asyncio.shield(self.store.release(job.id, self.id))
                log.info("job %s handed back: worker stopping", job.id)
            raise
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            keeper.cancel()

    async def _end(self, job: Job, status: JobStatus, error: VoxserveError | None = None) -> None:
        await asyncio.shield(self.store.finish(job.id, self.id, status, error))
        log.info("job %s %s%s", job.id, status.value, f": {error.message}" if error else "")

    async def _failed(self, job: Job, exc: Exception) -> None:
        error = exc if isinstance(exc, VoxserveError) else EngineError(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, RETRYABLE) and job.attempts < job.max_attempts:
            delay = backoff(job.attempts, self.settings.retry_base, self.settings.retry_cap)
            await asyncio.shield(self.store.retry(job.id, self.id, delay, error))
            log.warning(
                "job %s attempt %d failed (%s); retrying in %.1f s", job.id, job.attempts, error, delay
            )
        else:
            if not isinstance(exc, VoxserveError):
                log.exception("job %s failed", job.id, exc_info=exc)
            await self._end(job, JobStatus.FAILED, error)

    async def _keep_lease(self, job_id: str, task: asyncio.Task[object] | None) -> None:
        """Renew the lease every third of its length; stop the job if it was lost."""
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            if await self.store.heartbeat(job_id, self.id, self.settings.lease_seconds) is None and task:
                task.cancel(LeaseLost.__name__)
                return

    async def _run(self, job: Job) -> None:
        text = await self.store.text(job.id)
        if text is None:
            raise LeaseLost(job.id)  # deleted while it ran
        request = SpeechRequest(input=text, **job.request)
        plan = await asyncio.to_thread(self.pipeline.plan, request, max_chars=self.settings.max_chars)
        rate = plan.engine.capabilities.sample_rate
        progress = replace(job.progress, segments_total=len(plan.segments), chars_total=plan.chars)
        self.files.directory(job.id)
        pcm_path = self.files.pcm(job.id)
        stats = Stats(chars=plan.chars)
        with open(pcm_path, "a+b") as sink:
            sink.truncate(progress.bytes_done)  # drop a half-written segment from a crashed attempt
            try:
                async for index, audio in self.pipeline.segment_audio(
                    plan, stats, start=progress.segments_done
                ):
                    data = to_s16le(audio)
                    sink.write(data)
                    sink.flush()
                    os.fsync(sink.fileno())
                    bytes_done = progress.bytes_done + len(data)
                    progress = replace(
                        progress,
                        segments_done=index + 1,
                        bytes_done=bytes_done,
                        chars_done=min(plan.chars, progress.chars_done + len(plan.segments[index].text)),
                        audio_seconds=bytes_done / 2 / rate,
                    )
                    updated = await self.store.record_progress(job.id, self.id, progress)
                    if updated is None:
                        raise LeaseLost(job.id)
                    if updated.cancel_requested:
                        raise JobCanceled(job.id)
            except asyncio.CancelledError as exc:
                if exc.args == (LeaseLost.__name__,):
                    raise LeaseLost(job.id) from exc
                raise
        output = self.files.output(job.id, job.name, plan.audio_format.extension)
        await asyncio.get_running_loop().run_in_executor(None, encode_file, pcm_path, output, plan)
        pcm_path.unlink()
        progress = replace(progress, chars_done=plan.chars)
        if await self.store.record_progress(job.id, self.id, progress) is None:
            raise LeaseLost(job.id)
        await self._end(job, JobStatus.SUCCEEDED)


def encode_file(pcm_path: Path, output: Path, plan: Plan) -> None:
    """Encode the finished PCM into the requested format, a block at a time (flat memory)."""
    import numpy as np

    encoder = StreamEncoder(plan.audio_format, plan.engine.capabilities.sample_rate, plan.output_rate)
    partial = output.with_suffix(output.suffix + ".part")
    with open(pcm_path, "rb") as source, open(partial, "wb") as sink:
        while block := source.read(ENCODE_BLOCK):
            sink.write(encoder.write(np.frombuffer(block, "<i2").astype(np.float32) / 32768.0))
        sink.write(encoder.finish())
    partial.replace(output)


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
