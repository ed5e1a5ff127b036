"""``voxserve keys …``: make, list, show, disable and revoke API keys, straight in the store.

No server needed: the keys live beside the jobs (the data dir's SQLite file,
or the Redis of ``jobs.queue_url``), so this works on a fresh install (to
make the first admin key) and on any machine that shares the store.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voxserve.config import SCOPES, Quota, Settings, load_settings
from voxserve.errors import VoxserveError

if TYPE_CHECKING:
    from voxserve.security.admin import KeyAdmin

keys_app = typer.Typer(
    help="API keys (stored hashed, beside the jobs).", no_args_is_help=True, rich_markup_mode=None
)
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Where state lives.")]
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _run(config: Path | None, data_dir: Path | None, work: Callable[[KeyAdmin], Awaitable[T]]) -> T:
    from voxserve.security.admin import KeyAdmin
    from voxserve.security.store import open_key_store

    try:
        settings: Settings = load_settings(config, data_dir=data_dir)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc

    async def run() -> T:
        jobs = settings.jobs
        store = open_key_store(settings.queue_backend, jobs.queue_prefix)
        try:
            return await work(KeyAdmin(store, settings))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except VoxserveError as exc:
        console.print(f"[red]error ({exc.code}):[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc


def _seconds(duration: str) -> float:
    match = DURATION.match(duration.strip())
    if not match:
        raise typer.BadParameter("a number and a unit: 30d, 12h, 90m, 2w")
    return float(match.group(1)) * UNITS[match.group(2)]


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M") if stamp else "-"


@keys_app.command()
def create(
    name: Annotated[str, typer.Argument(help="What the key is for (a person, a team, a service).")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", "-s", help=f"One of {', '.join(SCOPES)}.")
    ] = None,
    expires_in: Annotated[str | None, typer.Option(help="e.g. 30d, 12h; default: never.")] = None,
    requests_per_minute: Annotated[int | None, typer.Option(min=1)] = None,
    chars_per_day: Annotated[int | None, typer.Option(min=1)] = None,
    chars_per_month: Annotated[int | None, typer.Option(min=1)] = None,
    concurrent_streams: Annotated[int | None, typer.Option(min=1)] = None,
    max_job_chars: Annotated[int | None, typer.Option(min=1)] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Make a key and print its token once (it is stored hashed: it cannot be shown again)."""
    scopes = tuple(scope or ["speech"])
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise typer.BadParameter(f"unknown scope {', '.join(unknown)}; scopes are {', '.join(SCOPES)}")
    limits = {
        "requests_per_minute": requests_per_minute,
        "chars_per_day": chars_per_day,
        "chars_per_month": chars_per_month,
        "concurrent_streams": concurrent_streams,
        "max_job_chars": max_job_chars,
    }
    quota = Quota(**{field: value for field, value in limits.items() if value is not None})
    expires = time.time() + _seconds(expires_in) if expires_in else None
    key, token = _run(config, data_dir, lambda admin: admin.create(name, scopes, expires, quota))
    console.print(f"key {key.id} ({escape(name)}), scopes {', '.join(key.scopes)}, expires {_when(expires)}")
    console.print("[bold]Store the token now: it is not kept and cannot be shown again.[/bold]")
    typer.echo(token)


@keys_app.command("list")
def list_keys(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Every key: state, scopes, and what it has used."""

    async def described(admin: KeyAdmin) -> list[dict[str, Any]]:
        return [await admin.describe(key) for key in await admin.list()]

    table = Table("id", "name", "scopes", "state", "created (UTC)", "expires", "characters", "requests")
    for key in _run(config, data_dir, described):
        usage = key["usage"]
        requests = sum(value for name, value in usage.items() if name.startswith("requests."))
        table.add_row(
            key["id"],
            key["name"],
            ", ".join(key["scopes"]),
            key["state"],
            _when(key["created_at"]),
            _when(key["expires_at"]),
            f"{usage.get('characters', 0):.0f}",
            f"{requests:.0f}",
        )
    Console(width=160 if not sys.stdout.isatty() else None).print(table)


@keys_app.command()
def show(
    key_id: Annotated[str, typer.Argument(help="The key's id (k_…), not its token.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """One key as JSON: its scopes, state, the limits that apply to it, and its usage."""

    async def described(admin: KeyAdmin) -> dict[str, Any]:
        return await admin.describe(await admin.get(key_id))

    typer.echo(json.dumps(_run(config, data_dir, described), indent=2))


@keys_app.command()
def revoke(key_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Revoke a key for good; it stops at once, on every replica."""
    key = _run(config, data_dir, lambda admin: admin.revoke(key_id))
    console.print(f"key {key.id} ({escape(key.name)}) revoked")


@keys_app.command()
def disable(key_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Stop a key until it is enabled again."""
    key = _run(config, data_dir, lambda admin: admin.update(key_id, disabled=True))
    console.print(f"key {key.id} ({escape(key.name)}) disabled")


@keys_app.command()
def enable(key_id: str, config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    key = _run(config, data_dir, lambda admin: admin.update(key_id, disabled=False))
    console.print(f"key {key.id} ({escape(key.name)}) enabled")
