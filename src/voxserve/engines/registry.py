"""Build engines from settings: the one place that knows every engine kind."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from voxserve.config import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.cosyvoice import CosyVoiceEngine
from voxserve.engines.embedded import Waiting
from voxserve.engines.emotivoice import EmotiVoiceEngine
from voxserve.engines.fake import FakeEngine
from voxserve.engines.glmtts import GlmTtsEngine
from voxserve.engines.hibari import HibariEngine
from voxserve.engines.kokoro import KokoroEngine
from voxserve.engines.openai import OpenAIEngine
from voxserve.engines.remote import RemoteEngine, default_client
from voxserve.errors import UnsupportedValue
from voxserve.routing import AdaptiveLimit, FixedLimit, Instance, Pool, PoolSettings, Role

T = TypeVar("T")
KINDS = ("kokoro", "hibari", "cosyvoice", "emotivoice", "openai", "glmtts", "fake")
REMOTE: dict[str, type[RemoteEngine]] = {
    "cosyvoice": CosyVoiceEngine,
    "emotivoice": EmotiVoiceEngine,
    "openai": OpenAIEngine,
}


def build_engine(config: EngineSettings, executor: Executor, data_dir: Path) -> Engine:
    """One engine instance for a ``[[engines]]`` entry."""
    cores = os.cpu_count() or 1
    if config.kind == "kokoro":
        return KokoroEngine(
            config.name,
            executor,
            model_dir=data_dir / "models",
            threads=config.threads or cores,
            max_concurrency=config.fixed_concurrency or 1,
            waiting=Waiting(config.queue_timeout, config.max_queue),
        )
    if config.kind == "hibari":
        return HibariEngine(
            config.name,
            executor,
            threads=config.threads or 1,
            max_concurrency=config.fixed_concurrency or cores,
            waiting=Waiting(config.queue_timeout, config.max_queue),
        )
    if config.kind in REMOTE:
        return build_pool(config)
    if config.kind == "glmtts":
        return build_glmtts(config, data_dir)
    if config.kind == "fake":
        return FakeEngine(name=config.name, **config.options)
    raise UnsupportedValue(
        f"engine kind {config.kind!r} is not known; choose one of {', '.join(KINDS)}",
        param="engines.kind",
    )


def _construct(name: str, make: Callable[..., T], options: Mapping[str, Any]) -> T:
    """``make(**options)``, where options the engine does not take are a clear error naming them."""
    try:
        return make(**options)
    except TypeError as exc:
        raise UnsupportedValue(f"engine {name!r}: {exc}", param="engines.options") from exc


def build_glmtts(config: EngineSettings, data_dir: Path) -> Engine:
    """One GLM-TTS command line, or with ``options.gpus`` one per GPU in a pool (each serial)."""
    options = dict(config.options)
    gpus = [str(gpu) for gpu in options.pop("gpus", [])]

    def one(gpu: str | None) -> GlmTtsEngine:
        environment = {"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else None
        make = partial(
            GlmTtsEngine, config.name, work_dir=data_dir / "glmtts" / config.name, environment=environment
        )
        return _construct(config.name, make, options)

    if not gpus:
        return one(None)
    limit = config.fixed_concurrency or 1
    instances = [Instance(one(gpu), f"gpu:{gpu}", Role.PRIMARY, FixedLimit(limit)) for gpu in gpus]
    return Pool(config.name, instances, pool_settings(config))


def pool_settings(config: EngineSettings) -> PoolSettings:
    return PoolSettings(
        health_interval=config.health_interval,
        health_timeout=config.health_timeout,
        queue_timeout=config.queue_timeout,
        max_queue=config.max_queue,
        attempts=config.attempts,
    )


def build_pool(config: EngineSettings) -> Pool:
    """A pool over the instances (and backups) of a remote engine."""
    if not config.urls:
        raise UnsupportedValue(
            f"engine {config.name!r} ({config.kind}) needs a url or instances", param="engines.url"
        )

    def instance(url: str, role: Role) -> Instance:
        client = default_client(url, config.read_timeout)
        engine = _construct(config.name, partial(REMOTE[config.kind], config.name, client), config.options)
        fixed = config.fixed_concurrency
        limit = FixedLimit(fixed) if fixed else AdaptiveLimit()
        return Instance(engine, url, role, limit, config.failures_to_eject, config.successes_to_return)

    instances = [instance(url, Role.PRIMARY) for url in config.urls]
    instances += [instance(url, Role.BACKUP) for url in config.backup]
    return Pool(config.name, instances, pool_settings(config))
