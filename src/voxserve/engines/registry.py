"""Build engines from settings: the one place that knows every engine kind."""

from __future__ import annotations

import os
from concurrent.futures import Executor
from pathlib import Path

from voxserve.config import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.fake import FakeEngine
from voxserve.engines.hibari import HibariEngine
from voxserve.engines.kokoro import KokoroEngine
from voxserve.errors import UnsupportedValue

KINDS = ("kokoro", "hibari", "fake")


def build_engine(config: EngineSettings, executor: Executor, data_dir: Path) -> Engine:
    """One engine instance for a ``[[engines]]`` entry."""
    cores = os.cpu_count() or 1
    if config.kind == "kokoro":
        return KokoroEngine(
            config.name,
            executor,
            model_dir=data_dir / "models",
            threads=config.threads or cores,
            max_concurrency=config.max_concurrency or 1,
        )
    if config.kind == "hibari":
        return HibariEngine(
            config.name,
            executor,
            threads=config.threads or 1,
            max_concurrency=config.max_concurrency or cores,
        )
    if config.kind == "fake":
        return FakeEngine(name=config.name, **config.options)
    raise UnsupportedValue(
        f"engine kind {config.kind!r} is not known; choose one of {', '.join(KINDS)}",
        param="engines.kind",
    )
