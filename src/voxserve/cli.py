"""The ``voxserve`` command: serve, say, voices, config.

Logging is configured here and only here; library modules just name their loggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.metadata
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from voxserve.batch.cli import batch as batch_command
from voxserve.batch.cli import book as book_command
from voxserve.batch.jobs_cli import UrlOption, jobs_app, voxserve
from voxserve.client.outputs import EXTENSIONS, output_format
from voxserve.client.sync import DEFAULT_URL
from voxserve.request import bounds
from voxserve.security.keys_cli import keys_app

# The server's side (settings, engines, the pipeline) is imported by the commands that run it:
# ``voxserve jobs``, ``batch`` and ``keys`` start in a fraction of the time without it.
if TYPE_CHECKING:
    from voxserve.config import Settings
    from voxserve.pipeline import SpeechRequest, Stats

# Plain help: this Typer's rich help shows every flag (even --help) as taking a <bool>.
app = typer.Typer(help="voxserve: self-hosted speech synthesis.", no_args_is_help=True, rich_markup_mode=None)
console = Console(stderr=True, soft_wrap=True)  # never break a message a script may parse

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (or $VOXSERVE_CONFIG).")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Where state lives (or $VOXSERVE_DATA_DIR).")
]
MetricsPortOption = Annotated[
    int | None, typer.Option(help="Serve Prometheus metrics (any path, no key) on this port too.")
]
MetricsAddressOption = Annotated[str | None, typer.Option(help="The address the metrics port listens on.")]


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"voxserve {importlib.metadata.version('voxserve')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """voxserve: self-hosted speech synthesis."""


def _settings(config: Path | None, **flags: object) -> Settings:
    """The settings, or each mistake in them said plainly (file, key, what is allowed) and exit 2."""
    from voxserve.config import CONFIG_FILE_ENV, Settings, load_settings
    from voxserve.config_errors import explain, unknown_variables
    from voxserve.registry import check_engines

    for warning in unknown_variables(Settings):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    source = config or (Path(os.environ[CONFIG_FILE_ENV]) if CONFIG_FILE_ENV in os.environ else None)
    try:
        settings = load_settings(config, **flags)
    except ValidationError as exc:
        console.print(
            f"[red]error: the settings are not valid[/red]\n{escape(explain(exc, Settings, source))}"
        )
        raise typer.Exit(2) from exc
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    try:
        check_engines(settings)
    except ValueError as exc:
        where = f"{source}: " if source else ""
        console.print(f"[red]error: the settings are not valid[/red]\n{escape(where + str(exc))}")
        raise typer.Exit(2) from exc
    return settings


@app.command()
def serve(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR.")] = None,
    metrics_port: MetricsPortOption = None,
    metrics_address: MetricsAddressOption = None,
    wyoming: Annotated[
        str | None,
        typer.Option(
            help="Also serve Wyoming (Home Assistant) here, e.g. tcp://127.0.0.1:10200; beyond loopback "
            "only with wyoming.allowed_clients set."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (and Wyoming, with --wyoming)."""
    import uvicorn

    from voxserve import tracing
    from voxserve.api import create_app
    from voxserve.api.speech_socket import MAX_MESSAGE_BYTES
    from voxserve.logs import configure_logging

    settings = _settings(
        config,
        data_dir=data_dir,
        host=host,
        port=port,
        log_level=log_level,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        wyoming={"uri": wyoming} if wyoming else None,
    )
    configure_logging(settings.log_level, settings.log_format)
    tracing.configure(settings)
    _warn_if_exposed(settings)
    if settings.metrics_port == settings.port:
        console.print(f"[red]error:[/red] --metrics-port {settings.port} is the API's port; choose another")
        raise typer.Exit(2)
    _check_port_free(settings.host, settings.port, "--port")
    _check_port_free(settings.metrics_address, settings.metrics_port, "--metrics-port")
    _check_port_free(settings.wyoming.host or "", settings.wyoming.port, "--wyoming")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sys.setswitchinterval(settings.switch_interval)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        ws_max_size=MAX_MESSAGE_BYTES,  # a larger message is refused (1009) before it is read whole
    )


def _warn_if_exposed(settings: Settings) -> None:
    """Serving beyond this machine without keys lets anyone use (and fill) it: say so, loudly."""
    from voxserve.config import is_loopback

    if settings.auth.enabled or is_loopback(settings.host):
        return
    console.print(
        f"[bold red]WARNING: serving on {settings.host} without API keys: anyone who can reach this "
        "port can synthesize, read every job and delete every voice. Turn keys on "
        "(auth.enabled = true, VOXSERVE_AUTH__ENABLED=true) and make one with `voxserve keys create`, "
        "or serve on 127.0.0.1 behind a proxy. See docs/security.md.[/bold red]"
    )
    if "*" not in settings.auth.allowed_hosts:
        console.print(
            f"[yellow]auth.allowed_hosts is {settings.auth.allowed_hosts}: requests for other host names "
            "get 400 invalid_host; add the names clients use.[/yellow]"
        )


def _check_port_free(host: str, port: int | None, flag: str) -> None:
    """Exit 1 with what to do when the port is taken (the server's own error names only errno 98)."""
    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # the server says what else is wrong
            console.print(
                f"[red]error:[/red] port {port} on {host} is already in use (another voxserve? "
                f"`ss -ltnp 'sport = :{port}'` shows which process); stop it, or choose another "
                f"port with {flag}"
            )
            raise typer.Exit(1) from exc


#: The bounds of the request model, as the options' min and max.
SPEED, PITCH, SEED = bounds("speed"), bounds("pitch"), bounds("seed")


@dataclass
class Said:
    """What ``say`` did: the synthesis, and the model loading before it (every run pays it)."""

    stats: Stats
    load_seconds: float
    cached: bool = False  # every segment came from the cache: the engine made nothing


async def _say(settings: Settings, request: SpeechRequest, sink: BinaryIO) -> Said:
    """One text to a file, loading only what it needs: planned first (no model is needed for that),
    then the one engine it names, on one instance with every thread, and no engine at all when
    the segment cache holds all of it."""
    from dataclasses import replace

    from voxserve.audio.finalize import finalize_header
    from voxserve.errors import EngineUnavailable
    from voxserve.pipeline import Stats
    from voxserve.services import Services

    services = Services.build(settings.for_one_text())
    pipeline = services.pipeline
    try:
        started = time.perf_counter()
        unloaded = replace(pipeline.planner.job, require_ready=False)
        plan = await asyncio.to_thread(pipeline.plan, request, unloaded)
        if any(pipeline.normalizer.needed(segment.text) for segment in plan.segments):
            await asyncio.to_thread(pipeline.normalizer.load)
        cached = await asyncio.to_thread(pipeline.renderer.all_cached, plan)
        if not cached:
            names = {engine.name for engine in plan.engines}
            await services.load(engines=names)  # a loader's failure is kept, not raised
            failed = sorted(names & set(pipeline.planner.failed))
            if failed:
                reason = pipeline.planner.failed[failed[0]]
                raise EngineUnavailable(f"loading engine {failed[0]!r} failed: {reason}")
        load_seconds = time.perf_counter() - started
        stats = Stats(chars=plan.chars)
        with _progress(len(plan.segments)) as advance:
            async for chunk in pipeline.encode(plan, stats):
                await asyncio.to_thread(sink.write, chunk)
                advance(stats.segments_done)
        if sink.seekable() and sink.readable():  # a file, not a pipe: its header gets the real lengths
            finalize_header(sink, plan.audio_format.name, stats.encoded_samples)
        return Said(stats, load_seconds, cached=cached)
    finally:
        await services.close()


@contextlib.contextmanager
def _progress(segments: int) -> Iterator[Callable[[int], None]]:
    """A bar of segments on a terminal when the text is long; nothing otherwise."""
    if segments < 5 or not console.is_terminal:
        yield lambda _: None
        return
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as bar:
        task = bar.add_task("speaking", total=segments)
        yield lambda done: bar.update(task, completed=done)


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="Text to speak; '-' reads standard input.")],
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Output file (its extension picks the format); '-' for stdout."),
    ],
    voice: Annotated[str | None, typer.Option(help="Voice id or OpenAI voice name.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Engine (kokoro, hibari, espeak, or a configured one) or OpenAI model name."),
    ] = None,
    format: Annotated[
        str | None, typer.Option(help=f"{', '.join(sorted(EXTENSIONS))}; default: the output's extension.")
    ] = None,
    speed: Annotated[float, typer.Option(min=SPEED["ge"], max=SPEED["le"])] = 1.0,
    pitch: Annotated[float, typer.Option(min=PITCH["ge"], max=PITCH["le"], help="Semitones.")] = 0.0,
    language: Annotated[
        str | None, typer.Option(help="A language code: en, zh, de, ... (detected if absent).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=int(SEED["ge"]), max=int(SEED["le"]), help="For engines with randomness."),
    ] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Synthesize without a server, straight to a file (texts as long as a job's, with progress)."""
    from voxserve.errors import VoxserveError
    from voxserve.logs import configure_logging
    from voxserve.pipeline import SpeechRequest
    from voxserve.planning import check_input, job_profile

    settings = _settings(config, data_dir=data_dir)
    configure_logging("WARNING")
    text = sys.stdin.read() if text == "-" else text
    try:
        response_format = output_format(output, format)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    try:
        check_input(text, job_profile(settings))  # before the models load, which takes seconds
    except VoxserveError as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)} (jobs.max_chars)")
        raise typer.Exit(2) from exc
    try:
        request = SpeechRequest(
            input=text,
            model=model,
            voice=voice,
            response_format=response_format,
            speed=speed,
            pitch=pitch,
            language=language,
            seed=seed,
        )
        if output == "-":
            said = asyncio.run(_say(settings, request, sys.stdout.buffer))
        else:
            with open(output, "w+b") as sink:  # read back too: the header gets the real lengths
                said = asyncio.run(_say(settings, request, sink))
    except ValidationError as exc:  # what the options' own checks leave to the request model
        problems = "; ".join(f"--{error['loc'][0]}: {error['msg']}" for error in exc.errors())
        console.print(f"[red]error (invalid_request):[/red] {escape(problems)}")
        raise typer.Exit(2) from exc
    except VoxserveError as exc:
        console.print(f"[red]error ({exc.code}):[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    stats = said.stats
    if said.cached:
        how, loading = "from the cache", f"planning took {said.load_seconds:.1f} s, no model was loaded"
    else:
        how = f"real-time factor {stats.real_time_factor or 0:.2f}"
        loading = f"loading the model took {said.load_seconds:.1f} s"
    console.print(
        f"{output}: {stats.audio_seconds:.2f} s of audio in {stats.elapsed:.2f} s ({how}); {loading}"
    )


@app.command()
def voices(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """List every engine's voices and the voice library's (no model is loaded: a program engine is
    asked which languages it has)."""
    from voxserve.registry import engine_kind
    from voxserve.services import Services

    settings = _settings(config, data_dir=data_dir)
    services = Services.build(settings)
    quick = [config.name for config in settings.engines if engine_kind(config.kind).loads_quickly]

    async def load_quick_ones() -> None:
        for name in quick:
            await services.pipeline.engines[name].load()

    asyncio.run(load_quick_ones())
    table = Table("voice", "engine", "languages", "gender")
    for engine in services.pipeline.engines.values():
        for voice in engine.capabilities.voices:
            spoken = _languages(voice.languages) + (f" ({voice.description})" if voice.description else "")
            table.add_row(voice.id, engine.name, spoken, voice.gender or "")
    library = Table("voice", "engine", "language", "made from", title="Library")
    for stored in services.voices.list():
        label = f"{stored.id} ({stored.name})" if stored.name else stored.id
        made = f"a blend: {stored.blend}" if stored.blend else f"a recording of {stored.seconds:g} s"
        library.add_row(label, stored.engine or "any that clones", stored.language or "", made)
    services.executor.shutdown()
    Console().print(table)
    if library.row_count:
        Console().print(library)
    Console().print(_alias_table(settings))


def _languages(codes: Sequence[str], shown: int = 6) -> str:
    """A voice's languages; past a few, how many and the first of them (espeak-ng has 100+)."""
    if len(codes) <= shown:
        return ", ".join(codes)
    return f"{len(codes)} languages: {', '.join(codes[:shown])}, ..."


def _first_of(voices: str | list[str], shown: int = 2) -> str:
    """An alias's voices for a language, best first: the first few, and how many follow."""
    listed = [voices] if isinstance(voices, str) else voices
    more = f" (+{len(listed) - shown})" if len(listed) > shown else ""
    return " or ".join(listed[:shown]) + more


def _alias_table(settings: Settings) -> Table:
    """Aliases that stand for the same voices on one row: the OpenAI names come in two groups."""
    grouped: dict[str, list[str]] = {}
    for alias, target in settings.voice_aliases.items():
        by_language = target if isinstance(target, dict) else {"*": target}
        shown = ", ".join(f"{language}: {_first_of(voices)}" for language, voices in by_language.items())
        grouped.setdefault(shown, []).append(alias)
    table = Table("voice names", "speak with (by language, first available)", title="Aliases")
    for shown, aliases in grouped.items():
        table.add_row(", ".join(aliases), shown)
    return table


@app.command()
def worker(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker loops in this process.")] = 1,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR.")] = None,
    metrics_port: MetricsPortOption = None,
    metrics_address: MetricsAddressOption = None,
) -> None:
    """Run job workers without the HTTP API (share the queue with `serve` via jobs.queue_url and
    storage.url, or one data_dir)."""
    from voxserve import tracing
    from voxserve.logs import configure_logging
    from voxserve.services import Services

    settings = _settings(
        config,
        data_dir=data_dir,
        log_level=log_level,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
    )
    configure_logging(settings.log_level, settings.log_format)
    tracing.configure(settings)
    _check_port_free(settings.metrics_address, settings.metrics_port, "--metrics-port")

    async def run() -> None:
        services = Services.build(settings)
        try:
            await services.run_until_stopped(workers)
        finally:
            await services.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_until_signal(run()))


async def _until_signal(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until SIGTERM or SIGINT, then cancel it so it can shut down cleanly."""
    task = asyncio.create_task(main)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


app.command("batch")(batch_command)
app.command("book")(book_command)
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")


@app.command()
def engines(url: UrlOption = DEFAULT_URL) -> None:
    """Each engine of a running server and its instances: health, load, limit, latency, errors, and
    the last error (why an instance is out)."""
    table = Table(
        "engine",
        "instance",
        "role",
        "healthy",
        "in flight",
        "limit",
        "latency p50~/p95 (ms)",
        "errors",
        "last error",
    )
    with voxserve(url) as client:
        listed = client.engines()["engines"]
    for engine in listed:
        for instance in engine["instances"]:
            latency = f"{instance.get('latency_ms_ewma') or '-'} / {instance.get('latency_ms_p95') or '-'}"
            limit = f"{instance.get('limit', '-')}{' auto' if instance.get('adaptive') else ''}"
            table.add_row(
                engine["name"],
                instance["url"],
                instance["role"],
                str(instance["healthy"]),
                str(instance.get("in_flight", "-")),
                limit,
                latency,
                f"{instance.get('errors', 0)}/{instance.get('requests', 0)}",
                escape(instance.get("last_error") or ""),
            )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@app.command("config")
def show_config(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Print the effective settings (defaults < TOML < environment < flags) as JSON."""
    settings = _settings(config, data_dir=data_dir)
    typer.echo(settings.model_dump_json(indent=2))
