"""``voxserve batch MANIFEST`` and ``voxserve book BOOK``: many items (or a book's chapters) made by a
running server, with progress and a summary."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from voxserve.batch.jobs_cli import UrlOption
from voxserve.batch.manifest import Item, ManifestError, read_manifest
from voxserve.batch.results import RESULTS_CSV, RESULTS_JSONL, Result
from voxserve.captions import CAPTION_FILES, file_name, render
from voxserve.client import AsyncClient, Retry
from voxserve.client.files import read_at_most
from voxserve.client.outputs import format_name
from voxserve.client.sync import DEFAULT_URL
from voxserve.request import Cast, brief

if TYPE_CHECKING:  # a batch's machinery (PyAV among it) is imported when a batch runs
    from voxserve.batch.run import BatchOptions

console = Console(stderr=True, soft_wrap=True)


def batch(
    manifest: Annotated[Path, typer.Argument(help="A .csv, a .jsonl, or a folder of .txt files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for {id}.{format} and the results.")],
    url: UrlOption = DEFAULT_URL,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, max=1024, help="Requests at once (default: adapt).")
    ] = None,
    attempts: Annotated[int, typer.Option(min=1, max=20, help="Tries per item.")] = 5,
    job_chars: Annotated[int, typer.Option(min=1, help="Longer items are sent as jobs.")] = 4000,
    max_chars: Annotated[int, typer.Option(min=1, help="The longest item accepted.")] = 1_000_000,
    retry_failed: Annotated[bool, typer.Option(help="Try again the items that failed last time.")] = False,
    captions: Annotated[bool, typer.Option(help="SRT, WebVTT and segments JSON beside each output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON summary on stdout, no progress.")] = False,
) -> None:
    """Make one audio file per manifest item: retried, resumable, as fast as the servers allow."""
    try:
        items = read_manifest(manifest, max_chars)
    except (ManifestError, OSError) as exc:  # every bad row, or a manifest that cannot be read
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    from voxserve.batch.run import BatchOptions, ServerUnreachable

    options = BatchOptions(output, jobs, attempts, job_chars, retry_failed, captions)
    started = time.monotonic()
    try:
        results = asyncio.run(_run(url, items, options, show=not as_json and console.is_terminal))
    except KeyboardInterrupt:
        console.print(
            f"[yellow]stopped:[/yellow] what is done is kept; run again to continue ({RESULTS_JSONL})"
        )
        raise typer.Exit(130) from None
    except ServerUnreachable as exc:
        console.print(
            f"[red]error:[/red] cannot reach the server at {escape(url)} ({escape(str(exc))}). Is it "
            f"running, and is --url right? What is made is kept ({output / RESULTS_JSONL}); run the "
            "same command again to continue."
        )
        raise typer.Exit(3) from None
    summary = _summary(results, time.monotonic() - started)
    if as_json:
        typer.echo(json.dumps({**summary, "results": [asdict(r) for r in results]}, ensure_ascii=False))
    else:
        _print_summary(summary, results, output)
    if summary["failed"]:
        raise typer.Exit(1)


async def _run(url: str, items: list[Item], options: BatchOptions, show: bool) -> list[Result]:
    from voxserve.batch.run import Batch

    async with AsyncClient(url, retry=Retry(attempts=1)) as client:
        if not show:
            return await Batch(client, items, options).run()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("making", total=len(items), status="")
            audio = [0.0]
            failed = [0]
            started = time.monotonic()

            def done(result: Result) -> None:
                audio[0] += result.audio_seconds or 0.0
                failed[0] += result.status == "failed"
                elapsed = time.monotonic() - started
                limit = runner.limit.snapshot.limit
                bar.update(
                    task,
                    advance=1,
                    status=f"{failed[0]} failed · {_duration(audio[0])} of audio · "
                    f"{audio[0] / max(elapsed, 1e-9):.1f}x real time · {limit} at once",
                )

            runner = Batch(client, items, options, on_result=done)
            bar.update(task, completed=sum(r.status != "pending" for r in runner.results))
            return await runner.run()


def _duration(seconds: float) -> str:
    """Seconds, minutes or hours, whichever reads best."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _summary(results: list[Result], seconds: float) -> dict[str, float | int]:
    return {
        "items": len(results),
        "ok": sum(r.status == "ok" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "pending": sum(r.status == "pending" for r in results),
        "audio_seconds": round(sum(r.audio_seconds or 0.0 for r in results), 3),
        "seconds": round(seconds, 3),
    }


def _print_summary(summary: dict[str, float | int], results: list[Result], output: Path) -> None:
    table = Table("items", "made", "failed", "audio", "took", title="batch")
    audio, took = _duration(float(summary["audio_seconds"])), _duration(float(summary["seconds"]))
    table.add_row(str(summary["items"]), str(summary["ok"]), str(summary["failed"]), audio, took)
    console.print(table)
    for result in (r for r in results if r.status == "failed"):
        console.print(f"[red]failed[/red] {result.id} (line {result.line}): {escape(result.error or '')}")
    console.print(f"results: {output / RESULTS_JSONL}, {output / RESULTS_CSV}")
    sys.stderr.flush()


def _cast(voices: str | None) -> dict[str, Any] | None:
    """``--voices``: a JSON object of speakers and their voices, inline or ``@file`` (up to 64 KiB);
    checked as a request's ``voices`` table is, so a bad one is refused before any chapter is sent."""
    if not voices:
        return None
    try:
        text = voices
        if voices.startswith("@"):
            path, limit = Path(voices[1:]), 64 * 1024
            text = read_at_most(path, limit, f"{path} is over {limit // 1024} KiB").decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--voices {voices}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return brief(TypeAdapter(Cast).validate_json(text))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"--voices{' ' + where if where else ''}: {error['msg']}") from None


def _cover(path: Path) -> bytes:
    """``--cover``: the image, checked (a file that cannot be read says which option it was)."""
    from voxserve.batch.book import read_cover  # PyAV: for books only

    try:
        return read_cover(path)
    except OSError as exc:
        raise ValueError(f"--cover {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"--cover {path}: {exc}") from None


def _chapter_voices(given: list[str], chapters: int) -> dict[int, dict[str, str]]:
    """``--chapter-voice NUMBER=VOICE``: the chapters read by a voice of their own."""
    found: dict[int, dict[str, str]] = {}
    for entry in given:
        number, _, name = entry.partition("=")
        if not (number.strip().isascii() and number.strip().isdigit()) or not name.strip():
            raise ValueError(f"--chapter-voice {entry!r} is not NUMBER=VOICE")
        if not 1 <= int(number) <= chapters:
            raise ValueError(f"--chapter-voice {entry!r}: the book has chapters 1 to {chapters}")
        found[int(number)] = {"voice": name.strip()}
    return found


def book(
    source: Annotated[Path, typer.Argument(help="The book: .txt, .md or .epub.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the chapters and the book.")],
    url: UrlOption = DEFAULT_URL,
    voice: Annotated[str | None, typer.Option(help="One voice for the whole book.")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    seed: Annotated[int, typer.Option(help="One seed for the whole book (engines with randomness).")] = 42,
    language: Annotated[str | None, typer.Option()] = None,
    format: Annotated[str, typer.Option(help="Each chapter's format.")] = "mp3",
    combined: Annotated[
        str, typer.Option(help="The whole book: m4b, mp3 (both with chapters), none.")
    ] = "m4b",
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, max=64, help="Chapters at once.")] = None,
    voices: Annotated[
        str | None,
        typer.Option(
            help='The characters\' voices, for lines like "Alice: …" and SSML <voice name>: JSON '
            '(\'{"Alice": "af_bella"}\') or @file.json.'
        ),
    ] = None,
    chapter_voice: Annotated[
        list[str] | None,
        typer.Option(help="A chapter's own voice: NUMBER=VOICE (repeat for more chapters)."),
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="The book's title tag (default: the EPUB's, or the # title).")
    ] = None,
    author: Annotated[str | None, typer.Option(help="The author tag (default: the EPUB's creator).")] = None,
    narrator: Annotated[str | None, typer.Option(help="The narrator tag.")] = None,
    year: Annotated[str | None, typer.Option(help="The year tag (default: the EPUB's date).")] = None,
    cover: Annotated[
        Path | None, typer.Option(help="Cover art, JPEG or PNG (default: the EPUB's cover image).")
    ] = None,
) -> None:
    """A book read aloud: a file per chapter, the whole book with chapter marks, an index and a cue sheet.

    Chapters come from Markdown headings, "Chapter N" lines, 第N章/第N回, or the EPUB's spine. A rerun
    continues where an interrupted one stopped.
    """
    try:
        from voxserve.batch.book import BookInfo, book_segments, combine, index, read_book, tag

        chapters, found = read_book(source)
        audio_format = format_name(format)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        console.print(f"[red]error:[/red] cannot read {source}: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    try:
        given = BookInfo(title, author, narrator, year, _cover(cover) if cover else None)
        info = given.over(found)
        cast = _cast(voices)
        own_voices = _chapter_voices(chapter_voice or [], len(chapters))
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if combined not in ("m4b", "mp3", "none") or not chapters:
        console.print(
            f"[red]error:[/red] {'--combined is m4b, mp3 or none' if chapters else f'{source} is empty'}"
        )
        raise typer.Exit(2)
    fields = {
        k: v
        for k, v in {
            "voice": voice,
            "model": model,
            "seed": seed,
            "language": language,
            "voices": cast,
        }.items()
        if v
    }
    items = [
        Item(c.number, c.id, c.text, audio_format, None, {**fields, **own_voices.get(c.number, {})})
        for c in chapters
    ]
    console.print(f"{source}: {len(chapters)} chapters, {sum(len(c.text) for c in chapters)} characters")
    try:
        from voxserve.batch.run import BatchOptions

        options = BatchOptions(output, jobs, captions=True)
        results = asyncio.run(_run(url, items, options, show=console.is_terminal))
    except KeyboardInterrupt:
        console.print("[yellow]stopped:[/yellow] finished chapters are kept; run again to continue")
        raise typer.Exit(130) from None
    failed = [r for r in results if r.status != "ok"]
    for result in failed:
        console.print(f"[red]failed[/red] {result.id}: {escape(result.error or result.status)}")
    if failed:
        raise typer.Exit(1)
    parts = [
        (c, output / item.output_name, r.audio_seconds or 0.0)
        for c, item, r in zip(chapters, items, results, strict=True)
    ]
    target = None if combined == "none" else output / f"{source.stem}.{combined}"
    if target is not None:
        combine(parts, target)
        tag(target, info)
    captioned = book_segments(parts)
    for caption_format, level in CAPTION_FILES:
        text = render(captioned, caption_format, level)
        (output / file_name(source.stem, caption_format, level)).write_text(text, encoding="utf-8")
    listing, cue = index(parts, target.name if target else None)
    (output / "index.json").write_text(json.dumps(listing, ensure_ascii=False, indent=2), encoding="utf-8")
    (output / f"{source.stem}.cue").write_text(cue, encoding="utf-8")
    audio = _duration(sum(seconds for _, _, seconds in parts))
    made_into = target or output
    also = f"index.json, {source.stem}.cue, {source.stem}.srt, .vtt, .words.srt, .words.vtt"
    console.print(f"{made_into}: {len(parts)} chapters, {audio} of audio; {also}")
