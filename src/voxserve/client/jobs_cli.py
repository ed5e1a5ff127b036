"""``voxserve jobs …``: submit, follow, download, list and cancel jobs on a running server."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

jobs_app = typer.Typer(help="Long texts as durable jobs on a running server.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

DEFAULT_URL = "http://127.0.0.1:8000"
UrlOption = Annotated[str, typer.Option("--url", envvar="VOXSERVE_URL", help="The server's base URL.")]


def _client(url: str) -> httpx.Client:
    """A client of the server; with ``$VOXSERVE_API_KEY`` set, it sends that key."""
    key = os.environ.get("VOXSERVE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, timeout=httpx.Timeout(30.0, read=300.0), headers=headers)


def _check(response: httpx.Response) -> Any:
    """The JSON of a success; the server's error message, and exit 1, otherwise."""
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        console.print(f"[red]error {response.status_code} ({error['code']}):[/red] {error['message']}")
    except (ValueError, KeyError):
        console.print(f"[red]error {response.status_code}:[/red] {response.text[:500]}")
    raise typer.Exit(1)


def request(url: str, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client(url) as client:
            return _check(client.request(method, path, **kwargs))
    except httpx.TransportError as exc:
        console.print(f"[red]error:[/red] cannot reach voxserve at {url}: {exc}")
        raise typer.Exit(2) from exc


@jobs_app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Text file to speak; '-' reads standard input.")],
    url: UrlOption = DEFAULT_URL,
    voice: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    format: Annotated[str, typer.Option(help="mp3, opus, aac, flac, wav, pcm.")] = "mp3",
    priority: Annotated[int, typer.Option(min=0, max=9)] = 0,
    name: Annotated[str | None, typer.Option(help="Output file name (no extension).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key: same job, never two.")] = None,
) -> None:
    """Queue a text file as a job and print its id."""
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    body: dict[str, Any] = {"input": text, "response_format": format, "priority": priority}
    body.update({k: v for k, v in {"voice": voice, "model": model, "name": name}.items() if v})
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    job = request(url, "POST", "/v1/jobs", json=body, headers=headers)
    console.print(f"queued {job['id']} ({len(text)} characters)")
    typer.echo(job["id"])


@jobs_app.command()
def status(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Print a job as JSON."""
    typer.echo(json.dumps(request(url, "GET", f"/v1/jobs/{job_id}"), indent=2))


@jobs_app.command("list")
def list_jobs(
    url: UrlOption = DEFAULT_URL,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed, canceled")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """The newest jobs (a table on a terminal, tab-separated lines otherwise)."""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    page = request(url, "GET", "/v1/jobs", params=params)
    rows = [
        (job["id"], job["status"], job["name"],
         f"{job['progress']['segments_done']}/{job['progress']['segments_total']}",
         f"{job['progress']['audio_seconds']:.1f}", job["created_at"])
        for job in page["data"]
    ]  # fmt: skip
    if not sys.stdout.isatty():  # for scripts: whole ids, one job per line
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table("id", "status", "name", "segments", "audio (s)", "created")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@jobs_app.command()
def cancel(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Cancel a job (a running one stops at its next segment)."""
    job = request(url, "DELETE", f"/v1/jobs/{job_id}")
    console.print(f"{job['id']}: {job['status']}{' (stopping)' if job['cancel_requested'] else ''}")


@jobs_app.command()
def wait(
    job_id: str,
    url: UrlOption = DEFAULT_URL,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Download the audio here.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 0.5,
) -> None:
    """Show a progress bar until the job ends; then download its audio with -o."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} segments"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(job_id, total=None)
        while True:
            job = request(url, "GET", f"/v1/jobs/{job_id}")
            p = job["progress"]
            bar.update(task, total=p["segments_total"] or None, completed=p["segments_done"],
                       description=f"{job_id} {job['status']}")  # fmt: skip
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            time.sleep(interval)
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        console.print(f"[red]job {job['status']}:[/red] {error.get('message', '')}")
        raise typer.Exit(1)
    if output is not None:
        with _client(url) as client, client.stream("GET", f"/v1/jobs/{job_id}/audio") as response:
            if not response.is_success:
                _check(response)
            with open(output, "wb") as sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
        console.print(f"{output}: {p['audio_seconds']:.1f} s of audio")
