"""The services one application runs on, built in its lifespan and kept on ``app.state``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Request

from voxserve.config import Settings
from voxserve.engines import Engine, build_engine
from voxserve.metrics import Metrics
from voxserve.pipeline import Pipeline
from voxserve.text import TextNormalizer

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a route needs: settings, the pipeline and the metrics."""

    settings: Settings
    pipeline: Pipeline
    metrics: Metrics
    executor: ThreadPoolExecutor
    load_error: str | None = None
    _loading: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, engines: Mapping[str, Engine] | None = None) -> Services:
        """Create (not yet load) the engines and pipeline; inference runs in a pool sized to the cores."""
        executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="voxserve-synth")
        if engines is None:
            engines = {e.name: build_engine(e, executor, settings.data_dir) for e in settings.engines}
        metrics = Metrics()
        pipeline = Pipeline(engines, TextNormalizer(), settings, executor, metrics)
        return cls(settings=settings, pipeline=pipeline, metrics=metrics, executor=executor)

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

    def start_loading(self) -> asyncio.Task[None]:
        self._loading = asyncio.create_task(self.load())
        return self._loading

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        for engine in self.pipeline.engines.values():
            await engine.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
