"""Engines from settings: the kinds found, each table's options checked, engines built and pooled.

Nothing here names a kind. A module of :mod:`voxserve.engines` that ends with
``KIND = EngineKind(...)`` is a kind; so is an object a distribution
publishes in the ``voxserve.engines`` entry-point group (see
docs/engines.md#adding-an-engine). A kind whose engine runs on servers gives
one instance per server (:class:`~voxserve.engines.kind.Servers`); the pool
over them is made here, so engines never import the routing that pools them.
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
from voxserve.config import Settings
from voxserve.config_errors import did_you_mean, explain
from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions, Servers
from voxserve.errors import UnsupportedValue
from voxserve.routing import AdaptiveLimit, FixedLimit, Instance, Pool, PoolSettings, Role

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
        if not isinstance(kind, EngineKind):
            continue
        if kind.name in table:
            raise ValueError(
                f"two engine kinds are named {kind.name!r} (a plug-in's kind must not take a built-in "
                "kind's name, nor another plug-in's); rename one in its voxserve.engines entry point"
            )
        table[kind.name] = kind
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
        problems = explain(exc, kind.options, None, within="options").replace("\n", "; ")
        raise ValueError(f"{where}: {problems}") from None
    servers = kind.serves_from_urls(options)
    if servers and not config.urls:
        raise ValueError(f"{where}: give url or instances (the engine's servers)")
    if not servers and (config.urls or config.backup):
        raise ValueError(f"{where}: url, instances and backup are for engines on servers; this one runs here")
    return options


def check_engines(settings: Settings) -> None:
    """Every ``[[engines]]`` table checked against its kind, and engines on one server agreeing
    (a ``ValueError`` names the table and the field): run before anything is built."""
    for config in settings.engines:
        check_engine(config)
    check_shared_servers(settings.engines)
    names = [config.name for config in settings.engines]
    if settings.default_engine not in names:
        raise ValueError(
            f"default_engine {settings.default_engine!r} is not an engine here; choose one of "
            f"{', '.join(names)}{did_you_mean(settings.default_engine, names)}"
        )


def build_engines(settings: Settings, context: BuildContext) -> dict[str, Engine]:
    """Every table's engine by name, once the tables are checked together (shared servers)."""
    check_shared_servers(settings.engines)
    return {config.name: build_engine(config, context) for config in settings.engines}


def build_engine(config: EngineSettings, context: BuildContext) -> Engine:
    """The engine for one ``[[engines]]`` table, built (not loaded) from its checked options; an
    engine on servers is a pool over them."""
    built = engine_kind(config.kind).build(config, check_engine(config), context)
    return _pooled(config, built) if isinstance(built, Servers) else built


def _pooled(config: EngineSettings, servers: Servers) -> Pool:
    """A pool over a table's servers: ``url`` and ``instances`` as primaries, ``backup`` as backups,
    each limited by ``max_concurrency``, else by the kind's own limit, else adaptively."""
    fixed = config.fixed_concurrency or servers.limit

    def instance(url: str, role: Role) -> Instance:
        limit = FixedLimit(fixed) if fixed else AdaptiveLimit()
        return Instance(
            servers.make(url), url, role, limit, config.failures_to_eject, config.successes_to_return
        )

    instances = [instance(url, Role.PRIMARY) for url in config.urls]
    instances += [instance(url, Role.BACKUP) for url in config.backup]
    settings = PoolSettings(
        health_interval=config.health_interval,
        health_timeout=config.health_timeout,
        queue_timeout=config.queue_timeout,
        max_queue=config.max_queue,
        attempts=config.attempts,
    )
    return Pool(config.name, instances, settings)


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
