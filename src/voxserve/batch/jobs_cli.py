"""``voxserve jobs …``: submit, follow, download, list and cancel jobs on a running server, through
the SDK (:mod:`voxserve.client`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voxserve.client.calls import Retry
from voxserve.client.errors import APIError, ConnectionFailed
from voxserve.client.outputs import format_name, output_format
from voxserve.client.sync import DEFAULT_URL, Client
from voxserve.request import bounds

jobs_app = typer.Typer(
    help="Long texts as durable jobs on a running server.", no_args_is_help=True, rich_markup_mode=None
)
console = Console(stderr=True, soft_wrap=True)

SPEED = bounds("speed")
UrlOption = Annotated[str, typer.Option("--url", envvar="VOXSERVE_URL", help="The server's base URL.")]


@contextmanager
def voxserve(url: str) -> Iterator[Client]:
    """The SDK's client of the server (``$VOXSERVE_API_KEY`` is its key); an error it raises ends the
    command with the server's code and message (exit 1), or that it cannot be reached (exit 2)."""
    try:
        with Client(url, retry=Retry(attempts=3)) as client:
            yield client
    except APIError as exc:
        console.print(f"[red]error {exc.status} ({exc.code}):[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc
    except ConnectionFailed as exc:
        console.print(f"[red]error:[/red] cannot reach voxserve at {url}: {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _read_text(file: Path) -> str:
    """The file's text ('-': standard input), or a one-line error naming the file."""
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{file}: no such file")
    except IsADirectoryError:
        _fail(f"{file} is a directory; give a text file")
    except UnicodeDecodeError as exc:
        _fail(f"{file} is not UTF-8 text (byte {exc.start}); convert it first")
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")


@jobs_app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Text file to speak; '-' reads standard input.")],
    url: UrlOption = DEFAULT_URL,
    voice: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    format: Annotated[str, typer.Option(help="mp3, opus, aac, flac, wav, pcm.")] = "mp3",
    speed: Annotated[float | None, typer.Option(min=SPEED["ge"], max=SPEED["le"])] = None,
    language: Annotated[str | None, typer.Option(help="A language code (detected if absent).")] = None,
    priority: Annotated[int, typer.Option(min=0, max=9)] = 0,
    run_at: Annotated[
        str | None, typer.Option(help="Not before this time: ISO 8601 (2026-12-24T08:00:00Z) or Unix time.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Output file name (no extension).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key: same job, never two.")] = None,
) -> None:
    """Queue a text file as a job and print its id."""
    text = _read_text(file)
    fields = {"voice": voice, "model": model, "name": name, "speed": speed, "language": language}
    body: dict[str, Any] = {"input": text, "response_format": format_name(format), "priority": priority}
    body.update({key: value for key, value in fields.items() if value is not None})
    if run_at is not None:
        body["run_at"] = float(run_at) if run_at.replace(".", "", 1).isdigit() else run_at
    with voxserve(url) as client:
        job = client.submit_job(body.pop("input"), idempotency_key=idempotency_key, **body)
    if job.get("replayed"):
        console.print(f"already queued as {job['id']} (same Idempotency-Key), now {job['status']}")
    else:
        console.print(f"queued {job['id']} ({len(text)} characters)")
    typer.echo(job["id"])


@jobs_app.command()
def status(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Print a job as JSON."""
    with voxserve(url) as client:
        typer.echo(json.dumps(client.get_job(job_id), indent=2))


@jobs_app.command("list")
def list_jobs(
    url: UrlOption = DEFAULT_URL,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed, canceled")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    before: Annotated[str | None, typer.Option(help="The next page: jobs older than this id.")] = None,
) -> None:
    """The newest jobs (a table on a terminal, tab-separated lines otherwise)."""
    with voxserve(url) as client:
        page = client.list_jobs(status, limit, before)
    rows = [
        (
            job["id"],
            job["status"],
            job["name"] if job["name"] != job["id"] else "",
            _segments(job),
            f"{job['progress']['audio_seconds']:.1f}",
            job["created_at"],
        )
        for job in page["data"]
    ]
    if not sys.stdout.isatty():  # for scripts: whole ids, one job per line
        for row in rows:
            typer.echo("\t".join(row))
        return
    Console().print(jobs_table(rows))
    if page["has_more"]:
        console.print(f"more: voxserve jobs list --before {rows[-1][0]}")


def jobs_table(rows: Sequence[Sequence[str]]) -> Table:
    """Jobs on a terminal, fitting 80 columns with whole ids: no outer border, the creation time as
    month-day hour:minute, the name last and cut short when the line is full."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    id_width = max((len(row[0]) for row in rows), default=2)
    for header, width in (("id", id_width), ("status", 9), ("segments", 8), ("audio s", 7), ("created", 11)):
        table.add_column(header, no_wrap=True, min_width=width)
    table.add_column("name", no_wrap=True, overflow="ellipsis")
    for job_id, state, job_name, segments, audio, created in rows:
        table.add_row(job_id, state, segments, audio, created[5:16].replace("T", " "), job_name)
    return table


def _segments(job: dict[str, Any]) -> str:
    """Segments done of the total; before the text is cut into segments, "planning" or "-"."""
    progress = job["progress"]
    if progress["segments_total"] is None:
        return "planning" if job["status"] == "running" else "-"
    return f"{progress['segments_done']}/{progress['segments_total']}"


@jobs_app.command()
def cancel(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Cancel a job (a running one stops at its next segment)."""
    with voxserve(url) as client:
        job = client.cancel_job(job_id)
    if job["status"] in ("succeeded", "failed"):
        console.print(f"{job['id']} had already {job['status']}: nothing to cancel")
    else:
        console.print(f"{job['id']}: {job['status']}{' (stopping)' if job['cancel_requested'] else ''}")


@jobs_app.command()
def wait(
    job_id: str,
    url: UrlOption = DEFAULT_URL,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Download the audio here (its extension: the job's format)."),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 0.5,
) -> None:
    """Show a progress bar until the job ends; then download its audio with -o."""
    with voxserve(url) as client:
        job = client.get_job(job_id)  # an unknown job ends here, before any bar
        if output is not None:
            _check_output(output, job["response_format"])
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[segments]} segments"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(job_id, total=None, segments="-")

            def show(state: dict[str, Any]) -> None:
                p = state["progress"]
                bar.update(
                    task,
                    total=p["segments_total"],
                    completed=p["segments_done"],
                    description=f"{job_id} {state['status']}",
                    segments=_segments(state),
                )

            job = client.wait_job(job_id, on_progress=show, interval=interval)
        if job["status"] != "succeeded":
            error = job.get("error") or {}
            canceled = job["status"] == "canceled"
            reason = error.get("message") or ("canceled on request" if canceled else "no reason given")
            console.print(f"[red]job {job['status']}:[/red] {escape(reason)}")
            raise typer.Exit(1)
        if output is not None:
            client.download_job(job_id, output)
            console.print(f"{output}: {job['progress']['audio_seconds']:.1f} s of audio")


def _check_output(output: Path, job_format: str) -> None:
    """Refuse to write the job's audio under a name of another format (MP3 bytes in a .wav)."""
    try:
        output_format(str(output), job_format)
    except ValueError as exc:
        _fail(f"{exc}; the job was submitted with --format {job_format}")
