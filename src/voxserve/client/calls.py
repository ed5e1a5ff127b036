"""Every call of the API once, as a request to send and how to read its answer.

:class:`~voxserve.client.Client` and :class:`~voxserve.client.AsyncClient` only send these (with
retries), so the two cannot drift apart: a route, a field or a parse lives here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from voxserve.client.errors import APIError, ConnectionFailed
from voxserve.client.retry import backoff

T = TypeVar("T")
JSON = dict[str, Any]
ENDED = frozenset({"succeeded", "failed", "canceled"})


def _json(response: httpx.Response) -> JSON:
    body: JSON = response.json()
    return body


def _content(response: httpx.Response) -> bytes:
    return response.content


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, whether it may be sent again, and how to read a success."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: JSON | None = None
    params: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Sent again after a retryable error: reads, and writes that are idempotent or keyed.
    idempotent: bool = True

    def build(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            json=self.json,
            params=self.params,
            data=self.data,
            files=self.files,
            headers=self.headers,
        )


@dataclass(frozen=True)
class Retry:
    """How often and how long to wait: ``Retry-After`` when the server says, else exponential backoff
    with jitter (so many clients refused together do not return together)."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before try ``attempt + 2`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return min(retry_after, self.cap)
        return backoff(attempt + 1, self.base, self.cap)


def _given(**fields: Any) -> JSON:
    return {key: value for key, value in fields.items() if value is not None}


def speech(
    input: str,
    *,
    voice: str | None,
    model: str | None,
    response_format: str,
    speed: float | None,
    language: str | None,
    extra: Mapping[str, Any],
) -> Call[bytes]:
    """OpenAI's speech request, plus whatever voxserve fields are given (``seed``, ``pitch``, ...)."""
    body = _given(
        input=input, voice=voice, model=model, response_format=response_format, speed=speed, language=language
    ) | dict(extra)
    return Call("POST", "/v1/audio/speech", _content, json=body)


def _job(response: httpx.Response) -> JSON:
    """The job; ``replayed`` says whether the idempotency key named one queued before."""
    return {**_json(response), "replayed": response.headers.get("Idempotent-Replayed") == "true"}


def submit_job(
    input: str, *, idempotency_key: str | None, run_at: datetime | float | None, fields: Mapping[str, Any]
) -> Call[JSON]:
    """A job; sent again after a failure only with an idempotency key (else it could be queued twice)."""
    when = run_at.isoformat() if isinstance(run_at, datetime) else run_at
    body = {"input": input, **_given(run_at=when), **_given(**fields)}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/v1/jobs", _job, json=body, headers=headers, idempotent=idempotency_key is not None)


def get_job(job_id: str) -> Call[JSON]:
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}", _json)


def list_jobs(status: str | None, limit: int, before: str | None) -> Call[JSON]:
    return Call("GET", "/v1/jobs", _json, params=_given(status=status, limit=limit, before=before))


def cancel_job(job_id: str) -> Call[JSON]:
    return Call("DELETE", f"/v1/jobs/{quote(job_id, safe='')}", _json)


def job_audio(job_id: str) -> Call[bytes]:
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}/audio", _content)


def job_captions(job_id: str, format_name: str) -> Call[JSON]:
    params = {"format": format_name}
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}/captions", _json, params=params)


def job_events(job_id: str) -> Call[bytes]:
    return Call("GET", f"/v1/jobs/{quote(job_id, safe='')}/events", _content)


def upload_voice(
    audio: bytes | Path, name: str | None, prompt_text: str | None, language: str | None
) -> Call[JSON]:
    """A reference recording into the library (the same audio and name again returns the stored voice)."""
    data = audio.read_bytes() if isinstance(audio, Path) else audio
    filename = audio.name if isinstance(audio, Path) else "reference"
    files = {"audio": (filename, data, "application/octet-stream")}
    form = _given(name=name, prompt_text=prompt_text, language=language)
    return Call("POST", "/v1/voices", _json, data=form, files=files)


def create_blend(name: str, formula: str, engine: str | None) -> Call[JSON]:
    return Call("POST", "/v1/voices", _json, data=_given(name=name, blend=formula, engine=engine))


def list_voices() -> Call[JSON]:
    return Call("GET", "/v1/voices", _json)


def delete_voice(voice: str) -> Call[JSON]:
    return Call("DELETE", f"/v1/voices/{quote(voice, safe='')}", _json)


def engines() -> Call[JSON]:
    return Call("GET", "/v1/engines", _json)


def usage() -> Call[JSON]:
    return Call("GET", "/v1/usage", _json)


def http_options(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    """How both clients set up httpx: the key (else ``$VOXSERVE_API_KEY``) as a Bearer token, a
    short connect timeout and a long read one (a long text takes a while to its first byte)."""
    key = api_key if api_key is not None else os.environ.get("VOXSERVE_API_KEY")
    return {
        "base_url": base_url,
        "timeout": httpx.Timeout(30.0, read=timeout),
        "headers": {"Authorization": f"Bearer {key}"} if key else {},
    }


#: Refusals that did nothing: safe to send again whatever the call (nothing was queued or charged).
REFUSED = frozenset({429, 503})


def retry_delay(call: Call[Any], retry: Retry, attempt: int, error: Exception) -> float | None:
    """Seconds to wait before sending ``call`` again after ``error``, or None to give up.

    A refusal (429, 503) did nothing, so any call may be sent again; other retryable answers and
    broken connections may have done the work, so only an idempotent call is.
    """
    if attempt + 1 >= retry.attempts:
        return None
    if isinstance(error, APIError) and (error.status in REFUSED or (error.retryable and call.idempotent)):
        return retry.delay(attempt, error.retry_after)
    if isinstance(error, ConnectionFailed) and call.idempotent:
        return retry.delay(attempt, None)
    return None
