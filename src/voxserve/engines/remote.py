"""Shared machinery for engines that live in another server.

A remote adapter describes one request (method, path, body) and how to turn
the response body into PCM; this base sends it with ``httpx`` (keepalive
pool, connect and read timeouts), streams the body without buffering, and
translates every failure into the error tree so routing can act on it:

- refused connections and 502/504 answers → ``EngineUnavailable``;
- 404 and 405 when the route itself is missing (the same call with no body gets 404/405 too:
  the wrong kind of server at that URL) → ``EngineMisconfigured``; a 404 for something the
  request named (a voice the server lacks) is that request's ``EngineRejected``;
- out-of-memory answers, 429 and 503 → ``EngineOverloaded``;
- answers that break off after they started, and bare 500s → ``EngineFailed``:
  the input's fault or the instance's, which the pool tells apart;
- timeouts → ``EngineTimeout``;
- other 4xx → ``EngineRejected`` (the engine refused this input; permanent).

The engine's own words (the tail of its error body) go into the message.
Leaving the stream early (a client that hung up) closes the upstream request.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from pydantic import Field

from voxserve.client.errors import unreachable
from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import EngineBase
from voxserve.engines.decode import decode_audio
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions, Servers
from voxserve.errors import (
    EngineError,
    EngineFailed,
    EngineMisconfigured,
    EngineOverloaded,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    VoxserveError,
)
from voxserve.values import PCM, Capabilities, SegmentRequest, from_s16

log = logging.getLogger(__name__)
OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemory|CUDA error: out of memory|OOM", re.IGNORECASE)
ERROR_TAIL = 300  # characters of an engine's error body kept in our message
ROUTE_CHECK_SECONDS = 5.0  # a 404's route asked again without a body, this long at most


def default_client(base_url: str, read_timeout: float = 300.0) -> httpx.AsyncClient:
    """Keepalive connections, 5 s to connect, ``read_timeout`` between bytes (300 s as in nginx setups)."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(read_timeout, connect=5.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )


@dataclass(frozen=True)
class Call:
    """One HTTP request to an engine."""

    path: str
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)


def engine_error(engine: str, status: int, body: str) -> VoxserveError:
    """The error a failed engine answer stands for, with the engine's own words."""
    tail = body.strip()[-ERROR_TAIL:] or "(empty body)"
    message = f"engine {engine!r} answered {status}: {tail}"
    if status in (429, 503) or OUT_OF_MEMORY.search(body):
        return EngineOverloaded(message)
    if status == 500:  # the server's own exception: maybe this input's (an unknown speaker)
        return EngineFailed(message, broke_off=False)
    if status >= 500:
        return EngineUnavailable(message)
    return EngineRejected(message)


def wrong_route(status: int, call: Call) -> str | None:
    """What a 404 or 405 on the route a kind calls means: that server does not serve this kind's API."""
    if status not in (404, 405):
        return None
    return (
        f"answered {status} to {call.method} {call.path}: is this the right kind of server for this "
        "engine (its [[engines]] kind), at the right URL?"
    )


class PcmStream:
    """Turns a raw little-endian sample stream into float32 chunks, whatever the byte boundaries."""

    def __init__(self, dtype: str) -> None:
        self._dtype = np.dtype(dtype)
        self._carry = b""

    def feed(self, data: bytes) -> PCM | None:
        data = self._carry + data
        usable = len(data) - len(data) % self._dtype.itemsize
        self._carry = data[usable:]
        if usable == 0:
            return None
        samples = np.frombuffer(data[:usable], self._dtype)
        if self._dtype.kind == "i":
            return from_s16(samples)
        return samples.astype(np.float32)


async def raw_pcm(response: httpx.Response, dtype: str) -> AsyncIterator[PCM]:
    """A streamed body of headerless samples (``<i2`` or ``<f4``) as float32 chunks."""
    stream = PcmStream(dtype)
    async for data in response.aiter_bytes():
        chunk = stream.feed(data)
        if chunk is not None and chunk.size:
            yield chunk


_WARNED_RATES: set[tuple[str, int, int]] = set()


async def decoded_file(source: bytes | Path, engine: str, rate: int) -> PCM:
    """A complete audio file (WAV, MP3, ...) from an engine, decoded to mono float32 at ``rate``.

    The file's own rate is what its samples mean: if it is not the configured ``sample_rate``,
    the audio is resampled (so it plays at the right speed) and a warning says so, once.
    """
    audio, declared = await asyncio.to_thread(decode_audio, source, rate)
    if declared != rate and (engine, declared, rate) not in _WARNED_RATES:
        _WARNED_RATES.add((engine, declared, rate))
        log.warning(
            "engine %r answers at %d Hz but is configured with sample_rate = %d; resampling "
            "(set options.sample_rate = %d to skip it)",
            engine,
            declared,
            rate,
            declared,
        )
    return audio


async def whole_file(response: httpx.Response, engine: str, rate: int) -> AsyncIterator[PCM]:
    """A complete audio file in the body (see :func:`decoded_file`)."""
    audio = await decoded_file(await response.aread(), engine, rate)
    if audio.size:
        yield audio


def failure(engine: str, what: str, words: str, *, answered: bool = False) -> EngineError:
    """An engine's failure told in its own words: overloaded when they say it ran out of memory.

    ``answered``: a server that is up answered this call with its own error (Gradio's ``AppError``,
    a Triton model's ``TritonError``), which may be this input's: ``EngineFailed``, for the pool to
    tell. Otherwise (a program that exited) the instance failed: ``EngineUnavailable``.
    """
    tail = words.strip()[-ERROR_TAIL:] or "(it said nothing)"
    message = f"engine {engine!r} {what}: {tail}"
    if OUT_OF_MEMORY.search(tail):
        return EngineOverloaded(message)
    return EngineFailed(message, broke_off=False) if answered else EngineUnavailable(message)


async def server_alive(client: httpx.AsyncClient, timeout: float) -> str | None:
    """None when a server answers ``GET /`` below 500 (these servers have no health route), else
    what is wrong; never raises."""
    try:
        response = await client.get("/", timeout=timeout)
    except httpx.HTTPError as exc:
        return unreachable(exc)
    return None if response.status_code < 500 else f"GET / answered {response.status_code}"


class RemoteOptions(EngineOptions):
    """What every server kind is told: the server's voices, its sample rate, its longest segment."""

    voices: list[str] = Field(min_length=1)
    sample_rate: int = Field(gt=0, description="of the audio the server sends")
    max_segment_chars: int = Field(default=200, ge=20)


class RemoteEngine(EngineBase):
    """Base of HTTP adapters; subclasses say what to send and how to read the answer.

    Nothing to load: the server holds the model. Health is the pool's business.
    """

    def __init__(self, name: str, client: httpx.AsyncClient, capabilities: Capabilities) -> None:
        super().__init__(name, capabilities)
        self._client = client
        self._misrouted: Call | None = None  # a call the server answered 404/405: not its API

    @property
    def url(self) -> str:
        return str(self._client.base_url)

    async def close(self) -> None:
        await super().close()
        await self._client.aclose()

    async def prepare(self, request: SegmentRequest) -> None:
        """Read what :meth:`call` will need from disk (a voice's recording), off the event loop."""

    @abstractmethod
    def call(self, request: SegmentRequest) -> Call:
        """The HTTP request that synthesizes one segment."""

    @abstractmethod
    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        """The response body as PCM chunks at ``capabilities.sample_rate``."""

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        await self.prepare(request)
        call = self.call(request)
        try:
            response = await self._send(call)
            try:
                if response.status_code >= 400:
                    body = (await response.aread()).decode("utf-8", "replace")
                    if wrong_route(response.status_code, call) is not None:
                        missing = await self._route_missing(call, ROUTE_CHECK_SECONDS)
                        if missing is not None:
                            self._misrouted = call
                            raise EngineMisconfigured(f"engine {self.name!r} at {self.url} {missing}")
                    raise engine_error(self.name, response.status_code, body)
                try:
                    async for chunk in self.decode(response):
                        yield chunk
                except httpx.TimeoutException:
                    raise
                except httpx.TransportError as exc:
                    raise EngineFailed(
                        f"engine {self.name!r} at {self.url} closed the answer before it finished ({exc!r})",
                        broke_off=True,
                    ) from exc
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            kind = type(exc).__name__
            raise EngineTimeout(f"engine {self.name!r} at {self.url} timed out ({kind})") from exc
        except httpx.ConnectError as exc:
            raise EngineUnavailable(
                f"engine {self.name!r} at {self.url} is unreachable: {unreachable(exc)}"
            ) from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"engine {self.name!r} at {self.url} gave no answer ({exc!r})") from exc

    async def _send(self, call: Call) -> httpx.Response:
        """The answer's head, its body left to stream. A kept-alive connection that the server closed
        after its last answer (uvicorn does after an error) fails before any answer: the request goes
        once more, on a new connection."""

        def request() -> httpx.Request:
            return self._client.build_request(
                call.method, call.path, json=call.json, data=call.data, files=call.files, headers=call.headers
            )

        try:
            return await self._client.send(request(), stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return await self._client.send(request(), stream=True)

    async def alive(self, timeout: float) -> str | None:
        """None when the server answers at all (``GET /`` below 500), else what is wrong."""
        return await server_alive(self._client, timeout)

    async def health(self, timeout: float = 2.0) -> str | None:
        """Alive, and once a call's route was found missing, serving that route again, so a
        server of another kind stays out instead of coming back after every check."""
        down = await self.alive(timeout)
        call = self._misrouted
        if down is not None or call is None:
            return down
        missing = await self._route_missing(call, timeout)
        if missing is None:
            self._misrouted = None
        return missing

    async def _route_missing(self, call: Call, timeout: float) -> str | None:
        """What is wrong when the server has no such route: the same call with no body (its headers
        kept) still gets 404/405, where a route that exists answers the missing fields (400/422)."""
        try:
            response = await self._client.request(
                call.method, call.path, headers=call.headers, timeout=timeout
            )
        except httpx.HTTPError as exc:
            return None if self._misrouted is None else unreachable(exc)
        return wrong_route(response.status_code, call)


OptionsT = TypeVar("OptionsT", bound=RemoteOptions)


def remote_kind(
    name: str,
    engine: Callable[[str, httpx.AsyncClient, OptionsT], RemoteEngine],
    options: type[OptionsT],
    summary: str,
) -> EngineKind[OptionsT]:
    """The kind of a server engine: a pool over its ``url``/``instances`` and ``backup`` servers,
    each with an adaptive limit unless ``max_concurrency`` fixes one."""

    def build(config: EngineSettings, checked: OptionsT, context: BuildContext) -> Servers:
        def make(url: str) -> RemoteEngine:
            return engine(config.name, default_client(url, config.read_timeout), checked)

        return Servers(make)

    return EngineKind(name, options, build, summary, needs_url=True)
