"""``Client``: the voxserve API from Python, blocking (``AsyncClient`` is the same for asyncio)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from voxserve.client import calls
from voxserve.client.calls import ENDED, JSON, Call, Retry
from voxserve.client.errors import APIError, ConnectionFailed
from voxserve.client.files import atomic_file

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """A voxserve server (or, for speech, any OpenAI-compatible one).

    ``api_key`` defaults to ``$VOXSERVE_API_KEY``. Retryable errors (429 and 503 with their
    ``Retry-After``, other 5xx and broken connections for calls that may be repeated) are retried
    as ``retry`` says; what is left raises :class:`APIError` with the server's code, message and
    param, or :class:`ConnectionFailed`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        retry: Retry = Retry(),
        http: httpx.Client | None = None,
    ) -> None:
        self.retry = retry
        self._http = http or httpx.Client(**calls.http_options(base_url, api_key, timeout))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call[Any], stream: bool = False) -> httpx.Response:
        """A successful answer (its body unread when ``stream``), after the retries the call allows."""
        attempt = 0
        while True:
            try:
                response = self._http.send(call.build(self._http), stream=stream)
                if response.is_success:
                    return response
                response.read()
                response.close()
                error: Exception = APIError.from_response(response)
            except httpx.TransportError as exc:
                error = ConnectionFailed.of(f"{call.method} {call.path}", exc)
            delay = calls.retry_delay(call, self.retry, attempt, error)
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._send(call))

    # speech
    def speech(
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
        """The whole audio of ``input``; ``extra`` carries voxserve's fields (``seed``, ``pitch``, ...)."""
        return self._run(
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

    @contextmanager
    def stream_speech(
        self,
        input: str,
        *,
        voice: str | None = None,
        model: str | None = None,
        response_format: str = "mp3",
        speed: float | None = None,
        language: str | None = None,
        **extra: Any,
    ) -> Iterator[Iterator[bytes]]:
        """``with client.stream_speech(text) as chunks:``: the audio as it is made."""
        call = calls.speech(
            input,
            voice=voice,
            model=model,
            response_format=response_format,
            speed=speed,
            language=language,
            extra=extra,
        )
        response = self._send(call, stream=True)
        try:
            yield response.iter_bytes()
        finally:
            response.close()

    def speech_to_file(self, path: str | Path, input: str, **options: Any) -> Path:
        """Stream ``input``'s audio into ``path`` (written whole or not at all)."""
        with self.stream_speech(input, **options) as chunks, atomic_file(Path(path)) as sink:
            for chunk in chunks:
                sink.write(chunk)
        return Path(path)

    # jobs
    def submit_job(
        self,
        input: str,
        *,
        idempotency_key: str | None = None,
        run_at: datetime | float | None = None,
        **fields: Any,
    ) -> JSON:
        """Queue a job; ``fields`` are its settings (``voice``, ``response_format``, ``priority``...)."""
        return self._run(
            calls.submit_job(input, idempotency_key=idempotency_key, run_at=run_at, fields=fields)
        )

    def get_job(self, job_id: str) -> JSON:
        return self._run(calls.get_job(job_id))

    def list_jobs(self, status: str | None = None, limit: int = 50, before: str | None = None) -> JSON:
        return self._run(calls.list_jobs(status, limit, before))

    def cancel_job(self, job_id: str) -> JSON:
        return self._run(calls.cancel_job(job_id))

    def wait_job(
        self,
        job_id: str,
        *,
        on_progress: Callable[[JSON], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> JSON:
        """Poll until the job ends (``on_progress`` sees each state); the final state, whatever it is."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] in ENDED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
            time.sleep(interval)

    def job_segments(self, job_id: str) -> list[JSON]:
        """A finished job's segments: each one's text and where it is in the audio (seconds)."""
        captions = self._run(calls.job_captions(job_id, "json"))
        return list(captions["segments"])

    def job_audio(self, job_id: str) -> bytes:
        """A finished job's whole audio (``download_job`` streams it to a file instead)."""
        return self._run(calls.job_audio(job_id))

    def download_job(self, job_id: str, path: str | Path) -> Path:
        """A finished job's audio into ``path`` (written whole or not at all)."""
        response = self._send(calls.job_audio(job_id), stream=True)
        try:
            with atomic_file(Path(path)) as sink:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
        finally:
            response.close()
        return Path(path)

    def job_events(self, job_id: str) -> Iterator[JSON]:
        """The job's states as the server sends them (Server-Sent Events), until it ends."""
        call = calls.job_events(job_id)
        try:
            with connect_sse(self._http, call.method, call.path) as source:
                if not source.response.is_success:
                    source.response.read()
                    raise APIError.from_response(source.response)
                for event in source.iter_sse():
                    yield event.json()
        except httpx.TransportError as exc:
            raise ConnectionFailed.of(call.path, exc) from exc

    # voices, engines, usage
    def upload_voice(
        self,
        audio: bytes | Path,
        *,
        name: str | None = None,
        prompt_text: str | None = None,
        language: str | None = None,
    ) -> JSON:
        return self._run(calls.upload_voice(audio, name, prompt_text, language))

    def create_blend(self, name: str, formula: str, engine: str | None = None) -> JSON:
        return self._run(calls.create_blend(name, formula, engine))

    def list_voices(self) -> JSON:
        return self._run(calls.list_voices())

    def delete_voice(self, voice: str) -> JSON:
        return self._run(calls.delete_voice(voice))

    def engines(self) -> JSON:
        return self._run(calls.engines())

    def usage(self) -> JSON:
        return self._run(calls.usage())
