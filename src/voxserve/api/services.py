"""The services one process runs on, built in its lifespan and kept on ``app.state``.

``voxserve serve`` runs them with the HTTP API; ``voxserve worker`` runs the
same services (engines, pipeline, job store, workers) without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request

from voxserve.cache import SegmentCache
from voxserve.config import Settings
from voxserve.engines import Engine
from voxserve.engines.kind import BuildContext
from voxserve.engines.registry import build_engine
from voxserve.errors import InsufficientStorage, InvalidRequest
from voxserve.jobs import Job, JobStore, open_store, request_hash
from voxserve.jobs.files import JobFiles, check_name
from voxserve.jobs.janitor import run_janitor
from voxserve.jobs.worker import Worker, WorkerHealth, WorkerSettings, run_workers
from voxserve.looplag import LoopLagMonitor
from voxserve.metrics import Metrics, PoolCollector, RuntimeCollector
from voxserve.pipeline import Pipeline, SpeechRequest
from voxserve.routing import Pool
from voxserve.text import TextNormalizer
from voxserve.voices import ReferenceRules, Voice, VoiceLibrary, check_reference
from voxserve.voices.sources import fetch_allowed_url, read_allowed_path

log = logging.getLogger(__name__)
METADATA_LIMIT = 4096


@dataclass
class Services:
    """Everything routes and workers need: settings, pipeline, job store, metrics."""

    settings: Settings
    pipeline: Pipeline
    metrics: Metrics
    executor: ThreadPoolExecutor
    store: JobStore
    files: JobFiles
    loop_lag: LoopLagMonitor
    load_error: str | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _workers: list[Worker] = field(default_factory=list, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, engines: Mapping[str, Engine] | None = None, store: JobStore | None = None
    ) -> Services:
        """Create (not yet load) engines, pipeline and job store; one inference pool sized to the cores."""
        executor = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1,
            thread_name_prefix="voxserve-synth",
            initializer=_yield_to_the_loop,
        )
        if engines is None:
            context = BuildContext(executor, settings.data_dir, os.cpu_count() or 1)
            engines = {e.name: build_engine(e, context) for e in settings.engines}
        metrics = Metrics()
        metrics.registry.register(PoolCollector([e for e in engines.values() if isinstance(e, Pool)]))
        voices = VoiceLibrary(settings.data_dir / "voices")
        cache = (
            SegmentCache(settings.data_dir / "cache", settings.cache_max_bytes)
            if settings.cache_max_bytes
            else None
        )
        if cache is not None:
            metrics.cache_bytes.set(cache.size)
        pipeline = Pipeline(engines, TextNormalizer(), settings, executor, metrics, voices, cache)
        loop_lag = LoopLagMonitor(metrics.event_loop_lag.observe)
        services = cls(
            settings=settings,
            pipeline=pipeline,
            metrics=metrics,
            executor=executor,
            loop_lag=loop_lag,
            store=store or open_store(settings.queue_url, settings.data_dir, settings.queue_prefix),
            files=JobFiles(settings.data_dir / "jobs"),
        )
        metrics.registry.register(RuntimeCollector(loop_lag.quantiles, services.worker_health))
        return services

    @property
    def worker_settings(self) -> WorkerSettings:
        s = self.settings
        return WorkerSettings(
            lease_seconds=s.job_lease_seconds,
            concurrency=s.worker_concurrency,
            max_chars=s.job_max_chars,
            max_audio_seconds=s.job_max_audio_seconds,
            disk_limit_bytes=s.job_disk_limit_bytes,
            retry_base=s.job_retry_base_seconds,
        )

    def worker_health(self) -> list[WorkerHealth]:
        return [worker.health for worker in self._workers]

    def task_failures(self) -> dict[str, str]:
        """Background tasks that ended when they should run for good (each is logged as it ends)."""
        return {
            task.get_name(): f"{type(error).__name__}: {error}"
            for task in self._tasks
            if task.done() and not task.cancelled() and (error := task.exception()) is not None
        }

    def _supervise(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background; if it ends with an error, log it (``/readyz`` shows it)."""
        task = asyncio.create_task(work, name=name)

        def ended(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("background task %s ended", name, exc_info=done.exception())

        task.add_done_callback(ended)
        self._tasks.append(task)

    async def load(self) -> None:
        """Load the normalizers and every engine; failures leave /readyz at 503 with the reason."""
        loop = asyncio.get_running_loop()
        try:
            import jieba

            await loop.run_in_executor(self.executor, jieba.initialize)
            await loop.run_in_executor(self.executor, self.pipeline.normalizer.load)
            for engine in self.pipeline.engines.values():
                await engine.load()
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("loading failed")
            raise
        log.info("ready: engines %s", ", ".join(self.pipeline.engines))

    def start(self, workers: int) -> None:
        """Load in the background, then run ``workers`` job workers and the retention janitor."""

        async def load_then_work() -> None:
            await self.load()
            self._workers = [
                Worker(self.store, self.pipeline, self.files, self.worker_settings) for _ in range(workers)
            ]
            await run_workers(self._workers)

        self._supervise(load_then_work(), "load-and-work")
        retention = self.settings.job_retention_hours * 3600
        self._supervise(
            run_janitor(self.store, self.files, retention, self.settings.janitor_interval_seconds), "janitor"
        )
        self._supervise(self.loop_lag.run(), "loop-lag")

    async def run_until_stopped(self, workers: int) -> None:
        """``voxserve worker``: the same services without HTTP, until cancelled."""
        self.start(workers)
        await asyncio.gather(*self._tasks)

    @property
    def voices(self) -> VoiceLibrary:
        return self.pipeline.voices

    @property
    def reference_rules(self) -> ReferenceRules:
        settings = self.settings
        return ReferenceRules(
            max_bytes=settings.max_upload_bytes,
            min_seconds=settings.reference_min_seconds,
            max_seconds=settings.reference_max_seconds,
            min_rate=settings.reference_min_rate,
        )

    async def add_reference(
        self,
        data: bytes,
        name: str | None = None,
        prompt_text: str | None = None,
        language: str | None = None,
    ) -> tuple[Voice, bool]:
        """Check, normalize and store reference audio; (the voice, whether it is new)."""
        checked = await asyncio.to_thread(check_reference, data, self.reference_rules)
        return self.voices.add_reference(checked, name=name, prompt_text=prompt_text, language=language)

    async def inline_reference(self, source: str, param: str) -> Voice:
        """A reference given by path (inside ``reference_dirs``) or URL (an allowed host), stored."""
        settings = self.settings
        is_url = source.startswith(("http://", "https://"))
        if "://" in source and not is_url:
            raise InvalidRequest(f"{param}: only http and https URLs are fetched", param=param)
        if is_url:
            data = await fetch_allowed_url(
                source,
                settings.reference_url_hosts,
                settings.reference_url_private,
                settings.max_upload_bytes,
                param=param,
                deadline=settings.reference_fetch_seconds,
            )
        else:
            data = await asyncio.to_thread(
                read_allowed_path, source, settings.reference_dirs, settings.max_upload_bytes, param
            )
        voice, _ = await self.add_reference(data)
        return voice

    async def submit(
        self,
        request: SpeechRequest,
        *,
        job_id: str,
        name: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
    ) -> tuple[Job, bool]:
        """Check a job fully, then store it; (job, created). Nothing unchecked is ever queued."""
        # A book takes seconds to segment: off the event loop, so other requests keep flowing.
        plan = await asyncio.to_thread(
            self.pipeline.plan,
            request,
            max_chars=self.settings.job_max_chars,
            require_ready=False,
            max_audio_seconds=self.settings.job_max_audio_seconds,
        )
        fields = {"request": request.__dict__, "name": name, "priority": priority, "metadata": metadata}
        digest = await asyncio.to_thread(request_hash, {**fields, "run_at": run_at})  # hashes the whole text
        parameters = {key: value for key, value in request.__dict__.items() if key != "input"}
        name = check_name(name) if name else job_id
        metadata = metadata or {}
        if len(repr(metadata)) > METADATA_LIMIT:
            raise InvalidRequest(f"metadata is over the limit of {METADATA_LIMIT} bytes", param="metadata")
        usage, limit = await asyncio.to_thread(self.files.usage), self.settings.job_disk_limit_bytes
        if usage >= limit:
            raise InsufficientStorage(
                f"job storage holds {usage} bytes, at its limit of {limit}; "
                "retry after finished jobs expire or are deleted"
            )
        job = Job(
            id=job_id,
            request=parameters,
            name=name,
            priority=priority,
            metadata=metadata,
            max_attempts=max_attempts or self.settings.job_max_attempts,
            idempotency_key=idempotency_key,
            request_hash=digest,
            sample_rate=plan.engine.capabilities.sample_rate,
            output_rate=plan.output_rate,
        )
        if run_at is not None:
            job.run_at = run_at.timestamp()
        return await self.store.enqueue(job, request.input)

    async def close(self) -> None:
        for worker in self._workers:
            await worker.stop()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
        for engine in self.pipeline.engines.values():
            await engine.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


SYNTH_NICENESS = 5


def _yield_to_the_loop() -> None:
    """Inference threads run a little below the event loop's priority: when the cores are all busy,
    the thread that routes every client's bytes is scheduled first (throughput is the same)."""
    with contextlib.suppress(OSError):  # not allowed here: run at the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SYNTH_NICENESS)


async def get_services(request: Request) -> Services:
    """Async, so FastAPI does not hop to a worker thread for it on every request."""
    services: Services = request.app.state.services
    return services
