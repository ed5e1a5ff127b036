"""Run a batch: every item to its output file, as fast as the servers allow, none lost.

Each item is a speech request (or, past ``job_chars``, a job) sent through the SDK with its own
retries, so each failure also tells the concurrency limit about the servers. Outputs are checked
(they must decode as audio) and written whole; the results manifest is rewritten as items finish,
so an interrupted run leaves a manifest the next run resumes from.

A server that cannot be reached at all (no connection could be made, and nothing answered, for
``unreachable_seconds``) stops the run with :class:`ServerUnreachable`, rather than failing every
item one connection error at a time. Such failures take none of an item's attempts: the items not
made stay to be made, and the same command continues later.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxserve.batch.concurrency import AdaptiveLimit
from voxserve.batch.manifest import Item
from voxserve.batch.results import Result, read_results, write_results
from voxserve.captions import CAPTION_FILES, file_name, render
from voxserve.client import APIError, AsyncClient, ConnectionFailed
from voxserve.client.files import atomic_file
from voxserve.client.retry import backoff
from voxserve.engines.decode import decode_audio

#: Answers that say the servers are full: the limit shrinks (other failures say nothing about load).
OVERLOADED = frozenset({429, 503, 504})
#: Seconds between readings of a gateway's engines, whose limits change (adaptive pools, instances
#: ejected or back).
FOLLOW_EVERY = 5.0


def engines_capacity(listing: Any, models: set[str]) -> int | None:
    """How many requests a voxserve gateway's engines run at once, from its ``GET /v1/engines``: the
    limits of the healthy instances of the engines the items name (of every engine, when they name
    none of them: a model alias or the default). None when the answer is not a gateway's."""
    try:
        engines = listing["engines"]
        named = [engine for engine in engines if engine["name"] in models] or engines
        return (
            sum(
                int(instance["limit"])
                for engine in named
                for instance in engine["instances"]
                if instance.get("healthy") and "limit" in instance
            )
            or None
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class BatchOptions:
    out_dir: Path
    concurrency: int | None = None  # None: adapt
    attempts: int = 5
    job_chars: int = 4000  # longer items go as jobs
    retry_failed: bool = False
    captions: bool = False  # SRT, WebVTT and segments JSON beside each output
    write_every: float = 2.0  # seconds between rewrites of the results manifest
    unreachable_seconds: float = 5.0  # no connection, and no answer, for this long: the run stops


class ServerUnreachable(Exception):
    """No connection for ``unreachable_seconds``: the server is down or the URL is wrong."""


class Batch:
    """One run over a manifest's items."""

    def __init__(
        self,
        client: AsyncClient,
        items: list[Item],
        options: BatchOptions,
        on_result: Callable[[Result], None] = lambda _: None,
    ) -> None:
        self.client = client
        self.items = items
        self.options = options
        self.limit = AdaptiveLimit(options.concurrency)
        self.on_result = on_result
        self.results = [Result(item.id, item.line, digest=item.digest) for item in items]
        self._voices: dict[Path, str] = {}
        self._voice_lock = asyncio.Lock()
        self._refused_since: float | None = None  # since when no connection could be made

    def resumable(self) -> list[int]:
        """Indexes of the items to make: not those done before from the same request (or failed
        before, unless retrying failures)."""
        previous = read_results(self.options.out_dir)
        todo = []
        for index, item in enumerate(self.items):
            done = previous.get(item.id)
            if done is None or done.digest != item.digest:
                todo.append(index)
                continue
            made = done.status == "ok" and (self.options.out_dir / item.output_name).is_file()
            given_up = done.status == "failed" and not self.options.retry_failed
            if made or given_up:
                self.results[index] = done
            else:
                todo.append(index)
        return todo

    async def run(self) -> list[Result]:
        """Make every item still to make; the results, in input order, also written to the manifest."""
        self.options.out_dir.mkdir(parents=True, exist_ok=True)
        todo = self.resumable()
        writer = asyncio.create_task(self._keep_writing())
        follower = await self._follow_the_gateway() if self.options.concurrency is None else None
        try:
            async with asyncio.TaskGroup() as group:
                for index in todo:
                    await self.limit.acquire()  # in input order: item n starts before item n+1
                    group.create_task(self._one(index))
        except* ServerUnreachable as stopped:
            raise stopped.exceptions[0] from None
        finally:
            writer.cancel()
            if follower is not None:
                follower.cancel()
            await asyncio.to_thread(write_results, self.options.out_dir, self.results)
        return self.results

    async def _gateway_capacity(self) -> int | None:
        models = {str(item.fields["model"]) for item in self.items if item.fields.get("model")}
        try:
            return engines_capacity(await self.client.engines(), models)
        except (APIError, ConnectionFailed):  # not a gateway, or its engine list needs an admin key
            return None

    async def _follow_the_gateway(self) -> asyncio.Task[None] | None:
        """With no ``-j``: when the server is a voxserve gateway that says how many requests its
        engines run at once, keep to that figure (read again every ``FOLLOW_EVERY`` s) rather than
        find it from answers; the task that reads it, or None (the limit then adapts)."""
        capacity = await self._gateway_capacity()
        if capacity is None:
            return None
        await self.limit.follow(capacity)

        async def keep_following() -> None:
            while True:
                await asyncio.sleep(FOLLOW_EVERY)
                if (now := await self._gateway_capacity()) is not None:
                    await self.limit.follow(now)

        return asyncio.create_task(keep_following())

    async def _keep_writing(self) -> None:
        while True:
            await asyncio.sleep(self.options.write_every)
            await asyncio.to_thread(write_results, self.options.out_dir, list(self.results))

    async def _one(self, index: int) -> None:
        """One item, its place already taken under the limit; retried with backoff and jitter.
        A try that could not connect takes none of its attempts (the run stops if none can)."""
        item, result = self.items[index], self.results[index]
        attempt, tries = 1, 0
        while attempt <= self.options.attempts:
            if tries:
                await self.limit.acquire()
            tries += 1
            result.attempts = attempt
            started = time.monotonic()
            try:
                result.audio_seconds = await self._make(item)
            except APIError as exc:
                self._refused_since = None
                result.error = f"{exc.status} {exc.code}: {exc.message}"
                if exc.status in OVERLOADED:
                    await self.limit.refused(exc.retry_after)
                else:
                    await self.limit.failed()
                if not exc.retryable:
                    break
                await asyncio.sleep(exc.retry_after or backoff(attempt, base=1.0, cap=30.0))
                attempt += 1
                continue
            except (ConnectionFailed, InvalidOutput) as exc:
                result.error = str(exc)
                await self.limit.failed()
                if isinstance(exc, ConnectionFailed) and not exc.connected:
                    self._check_reachable(exc)
                    await asyncio.sleep(backoff(tries, base=0.5, cap=2.0))
                    continue
                self._refused_since = None  # it was reached: a broken connection, or an answer
                await asyncio.sleep(backoff(attempt, base=1.0, cap=30.0))
                attempt += 1
                continue
            except BaseException:
                await self.limit.failed()
                raise
            self._refused_since = None
            # made the moment its file is whole: a run stopped now keeps it (it is not made twice)
            result.status, result.error, result.output = "ok", None, item.output_name
            await self.limit.succeeded(time.monotonic() - started, len(item.text))
            self.on_result(result)
            return
        result.status = "failed"
        self.on_result(result)

    def _check_reachable(self, refused: ConnectionFailed) -> None:
        """Raise :class:`ServerUnreachable` once no connection could be made for ``unreachable_seconds``
        (any answer or connection in between starts the count again)."""
        now = time.monotonic()
        if self._refused_since is None:
            self._refused_since = now
        if now - self._refused_since > self.options.unreachable_seconds:
            raise ServerUnreachable(
                f"no connection for {now - self._refused_since:.0f} s; the last try: {refused}"
            )

    async def _make(self, item: Item) -> float | None:
        """Make the item's audio and write it; its length in seconds."""
        fields = dict(item.fields)
        if item.reference is not None:
            fields["voice"] = await self._reference_voice(item.reference)
        if len(item.text) > self.options.job_chars:
            key = f"batch-{item.id}-{item.digest}"  # a retry finds the job queued before
            job = await self.client.submit_job(
                item.text, response_format=item.format, idempotency_key=key, **fields
            )
            job = await self.client.wait_job(job["id"], interval=1.0)
            if job["status"] != "succeeded":
                error = job.get("error") or {}
                code, message = str(error.get("code", f"job_{job['status']}")), str(error.get("message", ""))
                raise APIError(200, code, message)
            audio = await self.client.job_audio(job["id"])
            segments = await self.client.job_segments(job["id"]) if self.options.captions else None
        elif self.options.captions:
            answer = await self.client.speech(
                item.text, response_format=item.format, timestamps=True, **fields
            )
            captioned = json.loads(answer)
            audio, segments = base64.b64decode(captioned["audio"]), captioned["segments"]
        else:
            audio, segments = await self.client.speech(item.text, response_format=item.format, **fields), None
        seconds = await asyncio.to_thread(_audio_seconds, audio, item.format)
        path = self.options.out_dir / item.output_name
        await asyncio.to_thread(_write, path, audio)
        if segments is not None:
            await asyncio.to_thread(_write_captions, path, segments)
        return seconds

    async def _reference_voice(self, reference: Path) -> str:
        """A reference file as a library voice, uploaded once per run (the server keeps it once)."""
        async with self._voice_lock:
            if reference not in self._voices:
                voice = await self.client.upload_voice(reference)
                self._voices[reference] = str(voice["id"])
            return self._voices[reference]


class InvalidOutput(Exception):
    """An answer that is not audio of the format asked for."""


def _audio_seconds(audio: bytes, format_name: str) -> float | None:
    """The answer's length; it must decode (raw PCM has no header to check)."""
    if format_name == "pcm":
        return None
    try:
        samples, rate = decode_audio(audio)
    except Exception as exc:  # whatever FFmpeg says of bytes that are not audio
        raise InvalidOutput(f"the answer is not {format_name} audio: {exc}") from exc
    return round(len(samples) / rate, 3)


def _write(path: Path, audio: bytes) -> None:
    with atomic_file(path) as sink:
        sink.write(audio)


def _write_captions(audio: Path, segments: list[dict[str, Any]]) -> None:
    """``{id}.srt``, ``.vtt``, ``.segments.json``, ``.words.srt``, ``.words.vtt`` beside its audio."""
    for caption_format, level in CAPTION_FILES:
        text = render(segments, caption_format, level)
        _write(audio.with_name(file_name(audio.stem, caption_format, level)), text.encode())
