"""Sinks on the pipeline for HTTP: a streamed audio body and an SSE event stream.

Both start the synthesis before answering: the status line and headers go
out with the first encoded bytes, so everything that fails before the first
segment is done (an engine that is down, an empty result) is an ordinary
JSON error with the right status. A failure after that can only end the
stream: the audio body is cut (the client sees an incomplete response), the
SSE stream sends an ``error`` event. A client that hangs up while its first
segment still waits for the engine is noticed at once: its request leaves
the engine's line and costs no synthesis.

A third sink, :func:`file_response`, answers with the whole file (``/tts``
WAV downloads, which clients save as they are): its header then carries
the real lengths.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import StreamingResponse

from voxserve.audio.finalize import finalize_header
from voxserve.errors import ClientGone, VoxserveError
from voxserve.pipeline import Pipeline, Plan, Stats
from voxserve.rendering import SegmentTime
from voxserve.values import WordTime

SPOOL_BYTES = 8 * 1024 * 1024  # a whole-file answer stays in memory up to this, then goes to disk
READ_BLOCK = 64 * 1024

log = logging.getLogger("voxserve.requests")


@dataclass(frozen=True)
class Caller:
    """Who a synthesis is for (``who`` goes into its log line) and what to tell when it ends, however
    it ends (the admission's stream slot and usage are settled there)."""

    client: str = "-"
    key_id: str | None = None  # the key's id, never its token
    ended: Callable[[Stats], None] = lambda _: None


NOBODY = Caller()
TEXT_NAMES = {"key_id": "key"}  # the plain-text line's shorter names


def response_headers(plan: Plan, request_id: str) -> dict[str, str]:
    """What a client may want to know about how its request was served.

    Names are percent-encoded: header values must be Latin-1, voice ids such
    as CosyVoice's ``中文女`` are not.
    """
    headers = {
        "X-Voxserve-Engine": ",".join(quote(engine.name, safe="") for engine in plan.engines),
        "X-Voxserve-Voice": ",".join(quote(name, safe="") for name in plan.voice_names),
        "Cache-Control": "no-store",
    }
    if plan.ignored:
        headers["X-Voxserve-Ignored"] = ", ".join(plan.ignored)
    if plan.lexicons:  # each lexicon read with, and how many of its entries the text used
        headers["X-Voxserve-Lexicons"] = ", ".join(
            f"{quote(name, safe='')}={used}" for _, name, used in plan.lexicons
        )
    return headers


def log_line(request_id: str, plan: Plan, stats: Stats, outcome: str, caller: Caller) -> None:
    """One line per synthesis; its fields are also the JSON log line's own keys."""
    ttfa = stats.time_to_first_audio
    rtf = stats.real_time_factor
    fields = {
        "client": caller.client,
        "key_id": caller.key_id or "-",
        "engine": ",".join(engine.name for engine in plan.engines),
        "voice": ",".join(plan.voice_names),
        "format": plan.audio_format.name,
        "chars": plan.chars,
        "audio_s": round(stats.audio_seconds, 2),
        "ttfa_ms": round(ttfa * 1000) if ttfa is not None else None,
        "rtf": round(rtf, 3) if rtf is not None else None,
        "total_ms": round(stats.elapsed * 1000),
    }
    text = " ".join(f"{TEXT_NAMES.get(name, name)}={'-' if v is None else v}" for name, v in fields.items())
    log.info("request %s %s %s", request_id, outcome, text, extra={"outcome": outcome, **fields})


async def _until_disconnected(request: Request) -> None:
    """Return when the client hangs up (its body is read already: the next message says so)."""
    while (await request.receive())["type"] != "http.disconnect":
        continue


async def _first_or_gone(chunks: AsyncIterator[bytes], request: Request) -> bytes:
    """The first chunk, unless the client leaves before it exists (then ClientGone)."""
    first = asyncio.ensure_future(anext(chunks))
    gone = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({first, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not first.done():
            first.cancel()
    try:
        return await first
    except asyncio.CancelledError:
        if gone.done() and not gone.cancelled():
            raise ClientGone("the client hung up before its first audio") from None
        raise


async def _started(
    pipeline: Pipeline,
    plan: Plan,
    request_id: str,
    request: Request,
    stats: Stats | None = None,
    caller: Caller = NOBODY,
) -> AsyncIterator[bytes]:
    """The encoded stream, already run up to its first bytes; logs one line when it ends."""
    stats = stats or Stats(chars=plan.chars)
    chunks = pipeline.encode(plan, stats)
    try:
        first = await _first_or_gone(chunks, request)
    except BaseException as exc:
        stats.client_left = isinstance(exc, ClientGone)
        log_line(request_id, plan, stats, "disconnected" if stats.client_left else "failed", caller)
        caller.ended(stats)
        await chunks.aclose()
        raise

    async def stream() -> AsyncIterator[bytes]:
        outcome = "failed"
        try:
            yield first
            async for chunk in chunks:
                yield chunk
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "disconnected"  # the server closes or cancels the body when the client leaves
            raise
        finally:
            caller.ended(stats)
            await chunks.aclose()
            log_line(request_id, plan, stats, outcome, caller)

    return stream()


async def audio_response(
    pipeline: Pipeline, plan: Plan, request: Request, request_id: str, caller: Caller = NOBODY
) -> StreamingResponse:
    """The audio itself as the response body, streamed as it is made."""
    headers = response_headers(plan, request_id)
    body = await _started(pipeline, plan, request_id, request, caller=caller)
    return StreamingResponse(body, media_type=plan.audio_format.content_type, headers=headers)


async def file_response(
    pipeline: Pipeline, plan: Plan, request: Request, request_id: str, filename: str, caller: Caller = NOBODY
) -> StreamingResponse:
    """The whole file, made before answering, with its real lengths in the header and Content-Length."""
    stats = Stats(chars=plan.chars)
    spool, size = await _spooled(pipeline, plan, request, request_id, stats, caller)

    async def body() -> AsyncIterator[bytes]:
        try:
            while block := await asyncio.to_thread(spool.read, READ_BLOCK):
                yield block
        finally:
            spool.close()

    headers = response_headers(plan, request_id)
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    headers["Content-Length"] = str(size)
    return StreamingResponse(body(), media_type=plan.audio_format.content_type, headers=headers)


async def captioned_response(
    pipeline: Pipeline, plan: Plan, request: Request, request_id: str, caller: Caller = NOBODY
) -> StreamingResponse:
    """``timestamps: true``: the whole audio (base64) with where each segment is in it, as JSON.

    The audio is made whole first (:func:`_spooled`); the JSON is then written in blocks,
    base64 a block at a time, so a 20-minute WAV never sits in memory whole, twice over.
    ``timestamps`` has Kokoro-FastAPI's captioned-speech shape (``word``, ``start_time``,
    ``end_time``): a word each where the engine tells word times (Kokoro), else a segment's text
    each; ``timestamp_level`` says which (``word``, ``sentence``, or ``mixed``).
    """
    stats = Stats(chars=plan.chars, words=True)
    spool, _ = await _spooled(pipeline, plan, request, request_id, stats, caller)
    segments = [segment.to_dict() for segment in stats.timeline]
    level = timestamp_level(stats.timeline)
    timestamps = [
        {"word": entry.word, "start_time": round(entry.start, 3), "end_time": round(entry.end, 3)}
        for segment in stats.timeline
        for entry in (segment.words or [WordTime(segment.text, segment.start, segment.end)])
    ]
    timed = {"segments": segments, "timestamps": timestamps, "timestamp_level": level}
    tail = json.dumps(timed, ensure_ascii=False)

    async def body() -> AsyncIterator[bytes]:
        try:
            yield f'{{"audio_format": "{plan.audio_format.name}", "audio": "'.encode()
            while block := await asyncio.to_thread(spool.read, 3 * READ_BLOCK):  # whole base64 groups
                yield base64.b64encode(block)
            yield f'", {tail[1:]}'.encode()
        finally:
            spool.close()

    headers = response_headers(plan, request_id)
    return StreamingResponse(body(), media_type="application/json", headers=headers)


async def _spooled(
    pipeline: Pipeline, plan: Plan, request: Request, request_id: str, stats: Stats, caller: Caller
) -> tuple[IO[bytes], int]:
    """The whole file made before answering: spooled in memory up to :data:`SPOOL_BYTES`, then on
    disk (the request's audio limit bounds it), its header holding the real lengths, rewound; and
    its size. The caller's body closes it; a failure here closes it at once."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by the body
    try:
        async for chunk in await _started(pipeline, plan, request_id, request, stats, caller):
            await asyncio.to_thread(spool.write, chunk)
        size = await asyncio.to_thread(_finalized, spool, plan.audio_format.name, stats.encoded_samples)
    except BaseException:
        spool.close()
        raise
    return spool, size


def _finalized(spool: IO[bytes], format_name: str, samples: int) -> int:
    """Patch the header of the spooled file; its size, with the file rewound for reading."""
    finalize_header(spool, format_name, samples)  # type: ignore[arg-type]  # a spooled file is a BinaryIO
    size = spool.seek(0, 2)
    spool.seek(0)
    return size


def timestamp_level(timeline: list[SegmentTime]) -> str:
    """``word`` when every segment has its words' times, ``sentence`` when none has, else ``mixed``."""
    timed = sum(1 for segment in timeline if segment.words)
    return "word" if timed == len(timeline) and timed else "sentence" if not timed else "mixed"


def _event(payload: dict[str, object]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def sse_response(
    pipeline: Pipeline, plan: Plan, request: Request, request_id: str, caller: Caller = NOBODY
) -> StreamingResponse:
    """OpenAI's ``stream_format: sse``: base64 audio in ``speech.audio.delta`` events, then ``done``.

    A delta that follows the end of a segment's speech also carries ``segments``: each finished
    segment's text and where it starts and ends in the audio (seconds).
    """
    stats = Stats(chars=plan.chars, words=True)
    chunks = await _started(pipeline, plan, request_id, request, stats, caller)

    async def events() -> AsyncIterator[bytes]:
        told = 0
        try:
            async for chunk in chunks:
                delta: dict[str, object] = {
                    "type": "speech.audio.delta",
                    "audio": base64.b64encode(chunk).decode(),
                }
                if len(stats.timeline) > told:
                    delta["segments"] = [segment.to_dict() for segment in stats.timeline[told:]]
                    told = len(stats.timeline)
                yield _event(delta)
        except VoxserveError as exc:
            yield _event({"type": "error", "error": exc.to_dict()})
            return
        usage = {"input_tokens": plan.chars, "output_tokens": 0, "total_tokens": plan.chars}
        done: dict[str, object] = {"type": "speech.audio.done", "usage": usage}
        if len(stats.timeline) > told:
            done["segments"] = [segment.to_dict() for segment in stats.timeline[told:]]
        yield _event(done)

    headers = response_headers(plan, request_id)
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
