"""Stand-ins for EmotiVoice's OpenAI-style server and OpenAI's API, and what every stand-in shares.

Each speaks its original's protocol exactly (paths, methods, field names,
required fields, encodings) and synthesizes a deterministic tone whose
length follows the text. CosyVoice's runtime is :mod:`harness.servers.cosyvoice`.
The interfaces are copied from:

- EmotiVoice: netease-youdao/EmotiVoice@bc2de8c9eb1121237958ef154cb171e7faefc769,
  ``openaiapi.py`` (``SpeechRequest`` and ``POST /v1/audio/speech``; a whole
  file back, at 16 kHz).
- OpenAI: openai/openai-openapi@f85dbe223d40e1a31cba812ab2d755c7e98a92a3,
  ``openapi.yaml`` (``CreateSpeechRequest``: ``model``, ``input`` and
  ``voice`` required, no other fields; ``pcm`` is 24 kHz s16le).

A shared :class:`Behaviour` tells each how slow to be, how many requests it
can hold before it runs out of memory (and fails the way a real one does:
the stream breaks off after the headers, as a CUDA out-of-memory error
inside CosyVoice's generator does), what error rate to have, and whether it
is up at all.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from harness.server import free_port
from voxserve.audio.pcm import wav_bytes


@dataclass
class Behaviour:
    """What a test server does; tests change it while the server runs."""

    seconds_per_char: float = 0.0
    capacity: int | None = None  # concurrent requests above which it runs out of memory
    error_rate: float = 0.0
    up: bool = True
    break_after_chunks: int | None = None  # die part-way through every answer
    in_flight: int = 0
    peak_in_flight: int = 0
    served: int = 0
    out_of_memory: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


class OutOfMemoryError(RuntimeError):
    """What torch raises: ``torch.OutOfMemoryError: CUDA out of memory``."""


def tone(text: str, sample_rate: int, seconds_per_char: float = 0.06) -> np.ndarray:
    seconds = max(0.2, len(text) * seconds_per_char)
    t = np.arange(int(sample_rate * seconds), dtype=np.float32) / sample_rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * (180 + len(text) % 120) * t)).astype(np.float32)


async def generate(behaviour: Behaviour, text: str, sample_rate: int) -> AsyncIterator[bytes]:
    """Audio in ~0.1 s chunks, paced by ``seconds_per_char``; fails mid-stream when over capacity."""
    behaviour.in_flight += 1
    behaviour.peak_in_flight = max(behaviour.peak_in_flight, behaviour.in_flight)
    try:
        if behaviour.capacity is not None and behaviour.in_flight > behaviour.capacity:
            behaviour.out_of_memory += 1
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if behaviour.error_rate and random.random() < behaviour.error_rate:
            raise RuntimeError("inference failed")
        audio = tone(text, sample_rate)
        step = sample_rate // 10
        chunks = range(0, audio.size, step)
        for number, start in enumerate(chunks):
            if behaviour.break_after_chunks is not None and number == behaviour.break_after_chunks:
                raise RuntimeError("the instance died part-way through its answer")
            await asyncio.sleep(behaviour.seconds_per_char * len(text) / len(chunks))
            piece = audio[start : start + step]
            yield (piece * 32768).astype("<i2").tobytes()
        behaviour.served += 1
    finally:
        behaviour.in_flight -= 1


def unavailable() -> Response:
    return JSONResponse({"detail": "service unavailable"}, status_code=503)


class EmotiVoiceRequest(BaseModel):
    """Exactly EmotiVoice's ``openaiapi.py`` ``SpeechRequest``, with its defaults."""

    input: str
    voice: str = "8051"
    prompt: str | None = ""
    language: str | None = "zh_us"
    model: str | None = "emoti-voice"
    response_format: str | None = "mp3"
    speed: float | None = 1.0


def emotivoice_app(
    behaviour: Behaviour, sample_rate: int = 16000, speakers: tuple[str, ...] | None = None
) -> FastAPI:
    """``openaiapi.py``: ``speaker2id[speaker]`` raises ``KeyError`` for a speaker its model lacks
    (``speakers``; any when not given), a bare 500 from FastAPI."""
    app = FastAPI()

    @app.post("/v1/audio/speech")
    async def text_to_speech(request: EmotiVoiceRequest) -> Response:
        behaviour.requests.append(request.model_dump())
        if not behaviour.up:
            return unavailable()
        if speakers is not None and request.voice not in speakers:
            raise KeyError(request.voice)  # emotivoice_tts: speaker2id[speaker]
        chunks = [chunk async for chunk in generate(behaviour, request.input, sample_rate)]
        samples = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768
        return Response(wav_bytes(samples, sample_rate), media_type=f"audio/{request.response_format}")

    return app


class CreateSpeechRequest(BaseModel):
    """OpenAI's ``CreateSpeechRequest``: three fields required, no others allowed."""

    model_config = ConfigDict(extra="forbid")

    model: str
    input: str = Field(max_length=4096)
    voice: str | dict[str, str]
    instructions: str | None = Field(default=None, max_length=4096)
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["sse", "audio"] = "audio"


def openai_app(behaviour: Behaviour) -> FastAPI:
    """OpenAI's speech endpoint: ``response_format: pcm`` is 24 kHz s16le, streamed."""
    app = FastAPI()

    @app.post("/v1/audio/speech")
    async def speech(body: CreateSpeechRequest, request: Request) -> Response:
        behaviour.requests.append(
            {**body.model_dump(exclude_unset=True), "authorization": request.headers.get("authorization")}
        )
        if not behaviour.up:
            return unavailable()
        if body.response_format != "pcm":
            return JSONResponse({"error": {"message": "test server speaks pcm only"}}, status_code=400)
        return StreamingResponse(generate(behaviour, body.input, 24000), media_type="audio/pcm")

    return app


@contextmanager
def serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run an app with uvicorn on a loopback port (free by default), in a thread; yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
