"""Build engines from settings: the one place that knows every engine kind."""

from __future__ import annotations

import os
from concurrent.futures import Executor
from pathlib import Path

from voxserve.config import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.cosyvoice import CosyVoiceEngine
from voxserve.engines.emotivoice import EmotiVoiceEngine
from voxserve.engines.fake import FakeEngine
from voxserve.engines.glmtts import GlmTtsEngine
from voxserve.engines.hibari import HibariEngine
from voxserve.engines.kokoro import KokoroEngine
from voxserve.engines.openai import OpenAIEngine
from voxserve.engines.remote import RemoteEngine, default_client
from voxserve.errors import UnsupportedValue

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
            max_concurrency=config.max_concurrency or 1,
        )
    if config.kind == "hibari":
        return HibariEngine(
            config.name,
            executor,
            threads=config.threads or 1,
            max_concurrency=config.max_concurrency or cores,
        )
    if config.kind in REMOTE:
        if not config.url:
            raise UnsupportedValue(f"engine {config.name!r} ({config.kind}) needs a url", param="engines.url")
        client = default_client(config.url, config.read_timeout)
        try:
            return REMOTE[config.kind](config.name, client, **config.options)
        except TypeError as exc:
            raise UnsupportedValue(f"engine {config.name!r}: {exc}", param="engines.options") from exc
    if config.kind == "glmtts":
        try:
            return GlmTtsEngine(config.name, work_dir=data_dir / "glmtts" / config.name, **config.options)
        except TypeError as exc:
            raise UnsupportedValue(f"engine {config.name!r}: {exc}", param="engines.options") from exc
    if config.kind == "fake":
        return FakeEngine(name=config.name, **config.options)
    raise UnsupportedValue(
        f"engine kind {config.kind!r} is not known; choose one of {', '.join(KINDS)}",
        param="engines.kind",
    )
