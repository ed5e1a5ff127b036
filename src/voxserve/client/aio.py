"""``AsyncClient``: :class:`~voxserve.client.Client` for asyncio, call for call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

from voxserve.client import calls
from voxserve.client.calls import ENDED, JSON, Call, Retry
from voxserve.client.errors import APIError, ConnectionFailed
from voxserve.client.files import atomic_file
from voxserve.client.sync import DEFAULT_URL

T = TypeVar("T")


class AsyncClient:
    """A voxserve server from asyncio; see :class:`~voxserve.client.Client` for what each call does."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        retry: Retry = Retry(),
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.retry = retry
        self._http = http or httpx.AsyncClient(**calls.http_options(base_url, api_key, timeout))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[Any], stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(call.build(self._http), stream=stream)
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                error: Exception = APIError.from_response(response)
            except httpx.TransportError as exc:
                error = ConnectionFailed.of(f"{call.method} {call.path}", exc)
            delay = calls.retry_delay(call, self.retry, attempt, error)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def _run(self, call: Call[T]) -> T:
        return call.parse(await self._send(call))

    async def speech(
        self,
        input: str,
        *,
        voice: str | None = None,
        model: str | None = None,
        response_format: str = "mp3",
        speed: float | None = None,
        language: str | None = None,
        **extra: Any,
    ) -> bytes:
        return await self._run(
            calls.speech(
                input,
                voice=voice,
                model=model,
                response_format=response_format,
                speed=speed,
                language=language,
                extra=extra,
            )
        )

    @asynccontextmanager
    async def stream_speech(
        self,
        input: str,
        *,
        voice: str | None = None,
        model: str | None = None,
        response_format: str = "mp3",
        speed: float | None = None,
        language: str | None = None,
        **extra: Any,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        call = calls.speech(
            input,
            voice=voice,
            model=model,
            response_format=response_format,
            speed=speed,
            language=language,
            extra=extra,
        )
        response = await self._send(call, stream=True)
        try:
            yield response.aiter_bytes()
        finally:
            await response.aclose()

    async def speech_to_file(self, path: str | Path, input: str, **options: Any) -> Path:
        async with self.stream_speech(input, **options) as chunks:
            with atomic_file(Path(path)) as sink:
                async for chunk in chunks:
                    await asyncio.to_thread(sink.write, chunk)
        return Path(path)

    async def submit_job(
        self,
        input: str,
        *,
        idempotency_key: str | None = None,
        run_at: datetime | float | None = None,
        **fields: Any,
    ) -> JSON:
        call = calls.submit_job(input, idempotency_key=idempotency_key, run_at=run_at, fields=fields)
        return await self._run(call)

    async def get_job(self, job_id: str) -> JSON:
        return await self._run(calls.get_job(job_id))

    async def list_jobs(self, status: str | None = None, limit: int = 50, before: str | None = None) -> JSON:
        return await self._run(calls.list_jobs(status, limit, before))

    async def cancel_job(self, job_id: str) -> JSON:
        return await self._run(calls.cancel_job(job_id))

    async def wait_job(
        self,
        job_id: str,
        *,
        on_progress: Callable[[JSON], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> JSON:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] in ENDED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
            await asyncio.sleep(interval)

    async def job_segments(self, job_id: str) -> list[JSON]:
        """A finished job's segments: each one's text and where it is in the audio (seconds)."""
        captions = await self._run(calls.job_captions(job_id, "json"))
        return list(captions["segments"])

    async def job_audio(self, job_id: str) -> bytes:
        return await self._run(calls.job_audio(job_id))

    async def download_job(self, job_id: str, path: str | Path) -> Path:
        response = await self._send(calls.job_audio(job_id), stream=True)
        try:
            with atomic_file(Path(path)) as sink:
                async for chunk in response.aiter_bytes():
                    await asyncio.to_thread(sink.write, chunk)
        finally:
            await response.aclose()
        return Path(path)

    async def job_events(self, job_id: str) -> AsyncIterator[JSON]:
        call = calls.job_events(job_id)
        try:
            async with aconnect_sse(self._http, call.method, call.path) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    raise APIError.from_response(source.response)
                async for event in source.aiter_sse():
                    yield event.json()
        except httpx.TransportError as exc:
            raise ConnectionFailed.of(call.path, exc) from exc

    async def upload_voice(
        self,
        audio: bytes | Path,
        *,
        name: str | None = None,
        prompt_text: str | None = None,
        language: str | None = None,
    ) -> JSON:
        return await self._run(calls.upload_voice(audio, name, prompt_text, language))

    async def create_blend(self, name: str, formula: str, engine: str | None = None) -> JSON:
        return await self._run(calls.create_blend(name, formula, engine))

    async def list_voices(self) -> JSON:
        return await self._run(calls.list_voices())

    async def delete_voice(self, voice: str) -> JSON:
        return await self._run(calls.delete_voice(voice))

    async def engines(self) -> JSON:
        return await self._run(calls.engines())

    async def usage(self) -> JSON:
        return await self._run(calls.usage())
