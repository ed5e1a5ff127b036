"""The services one process runs on: built, loaded, started and closed here (the composition root).

``voxserve serve`` runs them under the HTTP API (:func:`voxserve.api.create_app`
keeps them on ``app.state``); ``voxserve worker``, the CLI and the benchmarks
run the same services without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Collection, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client

from voxserve.cache import SegmentCache
from voxserve.config import Settings
from voxserve.engines import Engine
from voxserve.engines.base import Elsewhere
from voxserve.engines.kind import BuildContext
from voxserve.jobs import JobStore, open_store
from voxserve.jobs.files import JobFiles
from voxserve.jobs.janitor import run_janitor
from voxserve.jobs.submit import JobSubmitter
from voxserve.jobs.webhooks import WebhookSender
from voxserve.jobs.worker import Worker, WorkerHealth, run_workers
from voxserve.looplag import LoopLagMonitor
from voxserve.metrics import Metrics, PoolCollector, RuntimeCollector, Snapshotting
from voxserve.pipeline import Pipeline
from voxserve.registry import build_engines
from voxserve.security.guard import Guard
from voxserve.security.quotas import open_limiter
from voxserve.security.store import open_key_store
from voxserve.storage import open_artifacts
from voxserve.text import TextNormalizer
from voxserve.voices import VoiceLibrary
from voxserve.voices.ingest import ReferenceIngest

log = logging.getLogger(__name__)


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
    jobs: JobSubmitter
    references: ReferenceIngest
    guard: Guard
    webhooks: WebhookSender
    load_error: str | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _workers: list[Worker] = field(default_factory=list, repr=False)
    _metrics_server: WSGIServer | None = field(default=None, repr=False)

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
            engines = build_engines(settings, BuildContext(executor, settings.data_dir, os.cpu_count() or 1))
        metrics = Metrics()
        metrics.registry.register(PoolCollector([e for e in engines.values() if isinstance(e, Snapshotting)]))
        artifacts = open_artifacts(settings.storage, settings.data_dir)
        voices = VoiceLibrary(artifacts, settings.data_dir / "voices-cache")
        cache = (
            SegmentCache(settings.data_dir / "cache", settings.cache_max_bytes)
            if settings.cache_max_bytes
            else None
        )
        if cache is not None:
            metrics.cache_bytes.set(cache.size)
        pipeline = Pipeline(engines, TextNormalizer(), settings, executor, metrics, voices, cache)
        loop_lag = LoopLagMonitor(metrics.event_loop_lag.observe)
        jobs = settings.jobs
        store = store or open_store(settings.queue_backend, jobs.queue_prefix)
        files = JobFiles(settings.data_dir / "jobs", artifacts)
        webhooks = WebhookSender(store, settings.webhooks, artifacts)
        store.on_end = webhooks.notify
        services = cls(
            settings=settings,
            pipeline=pipeline,
            metrics=metrics,
            executor=executor,
            loop_lag=loop_lag,
            store=store,
            files=files,
            jobs=JobSubmitter(store, files, pipeline, jobs, webhooks),
            references=ReferenceIngest(voices, settings.references),
            guard=build_guard(settings),
            webhooks=webhooks,
        )
        metrics.registry.register(RuntimeCollector(loop_lag.quantiles, services.worker_health))
        return services

    def worker_health(self) -> list[WorkerHealth]:
        return [worker.health for worker in self._workers]

    def task_failures(self) -> dict[str, str]:
        """Background tasks that ended when they should run for good (each is logged as it ends)."""
        return {
            task.get_name(): f"{type(error).__name__}: {error}"
            for task in self._tasks
            if task.done() and not task.cancelled() and (error := task.exception()) is not None
        }

    def supervise(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background; if it ends with an error, log it (``/readyz`` shows it)."""
        task = asyncio.create_task(work, name=name)

        def ended(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("background task %s ended", name, exc_info=done.exception())

        task.add_done_callback(ended)
        self._tasks.append(task)

    async def load(self, engines: Collection[str] | None = None) -> None:
        """Load the normalizers and every engine (``engines``: only those engines and nothing else;
        ``voxserve say`` loads the one its text needs, and the normalizers where it needs them).
        An engine that fails to load fails alone: its requests are told why (503), the others
        serve; one of this process's own leaves /readyz at 503 ``failed``. The normalizers failing
        stops everything (and raises)."""
        loop = asyncio.get_running_loop()
        try:
            if engines is None:
                import jieba

                await loop.run_in_executor(self.executor, jieba.initialize)
                await loop.run_in_executor(self.executor, self.pipeline.normalizer.load)
            failed = self.pipeline.planner.failed
            for engine in self.pipeline.engines.values():
                if engines is not None and engine.name not in engines:
                    continue
                try:
                    await engine.load()
                except Exception as exc:  # whatever a model's loader raises, kept and said
                    failed[engine.name] = f"{type(exc).__name__}: {exc}"
                    log.exception("engine %s failed to load", engine.name)
            local = [name for name in failed if not isinstance(self.pipeline.engines[name], Elsewhere)]
            if local:
                self.load_error = "; ".join(f"engine {name!r}: {failed[name]}" for name in local)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("loading failed")
            raise
        finally:
            self.pipeline.planner.loaded.set()
        loaded = [n for n in self.pipeline.engines if n not in failed and (engines is None or n in engines)]
        log.info("ready: engines %s", ", ".join(loaded))

    def start(self, workers: int) -> None:
        """Load in the background, then run ``workers`` job workers and the retention janitor."""

        async def load_then_work() -> None:
            await self.load()
            self._workers = [
                Worker(self.store, self.pipeline, self.files, self.settings.jobs, usage=self.guard.record_key)
                for _ in range(workers)
            ]
            await run_workers(self._workers)

        self.supervise(load_then_work(), "load-and-work")
        if self.settings.metrics_port is not None:
            self._metrics_server, _ = prometheus_client.start_http_server(
                self.settings.metrics_port, self.settings.metrics_address, self.metrics.registry
            )
        jobs = self.settings.jobs
        retention = jobs.retention_hours * 3600
        self.supervise(
            run_janitor(self.store, self.files, retention, jobs.janitor_interval_seconds), "janitor"
        )
        self.supervise(self.loop_lag.run(), "loop-lag")
        self.supervise(self.webhooks.run(), "webhooks")
        self.supervise(self.guard.keep_usage(), "usage")
        self.supervise(self.guard.limiter.keep_leases(), "stream-leases")

    async def run_until_stopped(self, workers: int) -> None:
        """``voxserve worker``: the same services without HTTP, until cancelled."""
        self.start(workers)
        await asyncio.gather(*self._tasks)

    @property
    def voices(self) -> VoiceLibrary:
        return self.pipeline.voices

    async def close(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        for worker in self._workers:
            await worker.stop()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.close()
        await self.store.close()
        await self.guard.close()
        for engine in self.pipeline.engines.values():
            await engine.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def build_guard(settings: Settings) -> Guard:
    """Keys beside the jobs (SQLite file or Redis); limits counted in ``limits.storage_url``, else in the
    job queue's Redis when there is one (replicas share the counts), else in this process."""
    jobs = settings.jobs
    keys = open_key_store(settings.queue_backend, jobs.queue_prefix)
    limiter = open_limiter(settings.limits_backend, jobs.queue_prefix)
    return Guard(settings, keys, limiter)


SYNTH_NICENESS = 5


def _yield_to_the_loop() -> None:
    """Inference threads run a little below the event loop's priority: when the cores are all busy,
    the thread that routes every client's bytes is scheduled first (throughput is the same)."""
    with contextlib.suppress(OSError):  # not allowed here: run at the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SYNTH_NICENESS)
