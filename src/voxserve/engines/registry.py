"""The engine kinds: every module of this package that declares ``KIND``, and installed plug-ins.

Nothing here names a kind. A module beside this one that ends with
``KIND = EngineKind(...)`` is a kind; so is an object a distribution
publishes in the ``voxserve.engines`` entry-point group (see
docs/engines.md#adding-an-engine).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

import voxserve.engines
from voxserve.config import EngineSettings
from voxserve.config_errors import did_you_mean
from voxserve.engines.base import Engine
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions
from voxserve.errors import UnsupportedValue

ENTRY_POINT_GROUP = "voxserve.engines"


@cache
def kinds() -> dict[str, EngineKind[Any]]:
    """Every kind by name, this package's first; found once per process."""
    found: list[object] = []
    for module in pkgutil.iter_modules(voxserve.engines.__path__):
        found.append(getattr(importlib.import_module(f"voxserve.engines.{module.name}"), "KIND", None))
    found += [entry.load() for entry in entry_points(group=ENTRY_POINT_GROUP)]
    table: dict[str, EngineKind[Any]] = {}
    for kind in found:
        if isinstance(kind, EngineKind):
            table.setdefault(kind.name, kind)
    return table


def engine_kind(name: str) -> EngineKind[Any]:
    kind = kinds().get(name)
    if kind is None:
        raise UnsupportedValue(
            f"engine kind {name!r} is not known; choose one of {', '.join(sorted(kinds()))}"
            + did_you_mean(name, kinds()),
            param="engines.kind",
        )
    return kind


def check_engine(config: EngineSettings) -> EngineOptions:
    """The table's options, checked against its kind; a ``ValueError`` names the table and each field."""
    where = f"[[engines]] {config.name!r} (kind {config.kind!r})"
    try:
        kind = engine_kind(config.kind)
        options: EngineOptions = kind.parse(config.options)
    except UnsupportedValue as exc:
        raise ValueError(f"{where}: {exc.message}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(['options', *map(str, error['loc'])])}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ValueError(f"{where}: {problems}") from None
    servers = kind.serves_from_urls(options)
    if servers and not config.urls:
        raise ValueError(f"{where}: give url or instances (the engine's servers)")
    if not servers and (config.urls or config.backup):
        raise ValueError(f"{where}: url, instances and backup are for engines on servers; this one runs here")
    return options


def build_engine(config: EngineSettings, context: BuildContext) -> Engine:
    """The engine for one ``[[engines]]`` table, built (not loaded) from its checked options."""
    return engine_kind(config.kind).create(config, context)


def check_shared_servers(configs: Sequence[EngineSettings]) -> None:
    """Engines on one server agree on what that server keeps for all (a ``ValueError`` names them)."""
    seen: dict[str, tuple[str, tuple[str, object]]] = {}
    for config in configs:
        kind = engine_kind(config.kind)
        setting = kind.server_setting(kind.parse(config.options)) if kind.server_setting else None
        if setting is None:
            continue
        for url in (*config.urls, *config.backup):
            where = url.rstrip("/")
            other, agreed = seen.setdefault(where, (config.name, setting))
            if agreed != setting:
                name, value = setting
                raise ValueError(
                    f"[[engines]] {config.name!r} and {other!r} use the server at {url} with different "
                    f"{name} ({value!r} and {agreed[1]!r}): it reloads its model on each change; "
                    "give each its own server"
                )
