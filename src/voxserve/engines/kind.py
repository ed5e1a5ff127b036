"""How an engine module offers itself to voxserve: a kind name, a typed options model, a builder.

Every engine module ends with ``KIND = EngineKind(...)``. The registry finds
each such module in this package (and third-party ones through the
``voxserve.engines`` entry-point group), so adding an engine is adding one
file; nothing else lists the kinds. A kind's ``options`` model is checked
when settings load, so a wrong type or an unknown option is an error naming
the ``[[engines]]`` table and the field before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.embedded import Waiting


class EngineOptions(BaseModel):
    """Base of every kind's ``options`` table: unknown keys are errors, values are checked types."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(EngineOptions):
    """For kinds configured by the common ``[[engines]]`` fields alone."""


OptionsT = TypeVar("OptionsT", bound=EngineOptions)


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use besides its settings: the inference threads and where files go."""

    executor: Executor
    data_dir: Path
    cores: int

    def work_dir(self, config: EngineSettings) -> Path:
        """A directory of the engine's own under the data dir (prompts, outputs of a command)."""
        return self.data_dir / "engines" / config.name


@dataclass(frozen=True)
class Servers:
    """An engine that runs on servers (GPUs, apps): ``make(url)`` is one instance, and the registry
    pools one per ``url``/``instances`` and ``backup`` server. Each instance takes ``limit``
    requests at once unless ``max_concurrency`` says otherwise; None finds it from latency and errors."""

    make: Callable[[str], Engine]
    limit: int | None = None


@dataclass(frozen=True)
class EngineKind(Generic[OptionsT]):
    """One engine kind: ``build(settings, options, context)`` makes the engine (not yet loaded)."""

    name: str
    options: type[OptionsT]
    build: Callable[[EngineSettings, OptionsT, BuildContext], Engine | Servers]
    summary: str
    #: a server kind: its ``[[engines]]`` table must give ``url`` or ``instances``; a function of the
    #: options when that depends on them (a kind with a server interface and a local one)
    needs_url: bool | Callable[[OptionsT], bool] = False
    #: a setting a server keeps for all its callers, as (name, value), or None where it does not
    #: (GLM-TTS's app reloads its model whenever sample_rate changes): engines that share a server
    #: must agree on it, or settings do not load
    server_setting: Callable[[OptionsT], tuple[str, object] | None] | None = None
    #: loading it costs next to nothing (no model: a program asked which languages it has), so
    #: ``voxserve voices`` loads it to list what it really offers
    loads_quickly: bool = False

    def parse(self, options: Mapping[str, Any]) -> OptionsT:
        """The checked options (a ``pydantic.ValidationError`` names each bad field)."""
        return self.options.model_validate(dict(options))

    def serves_from_urls(self, options: OptionsT) -> bool:
        return self.needs_url(options) if callable(self.needs_url) else self.needs_url


def waiting_of(config: EngineSettings) -> Waiting:
    """How long, and how many, segments may wait for an embedded engine."""
    return Waiting(config.queue_timeout, config.max_queue)
