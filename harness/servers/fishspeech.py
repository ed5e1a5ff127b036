"""A stand-in for fish-speech's HTTP API server, failures included.

Follows fishaudio/fish-speech@3dd1f85c402ee6f0a17c2971d3b0dd8d881ca139:

- ``tools/server/api_utils.py``: the body by its Content-Type (JSON or msgpack; anything else
  415), validated as ``ServeTTSRequest`` (a failure is 422 with pydantic's error list as it is);
  ``--max-text-length`` (400 "Text is too long, max length is N"); ``--api-key`` (401 without
  ``Authorization: Bearer``).
- ``tools/server/views.py``: ``GET /v1/health``; ``POST /v1/tts``: streaming only with
  ``format: "wav"`` (else 400 "Streaming only supports WAV format"); streamed answers are raw
  16-bit samples with no header (the engine's header is an array its server drops), typed
  ``audio/wav``; inference runs while the body is sent, so its errors stop the body short; a
  whole answer is a 44.1 kHz WAV file, and ``pcm``/``opus`` are 500s (soundfile knows neither).
- ``fish_speech/utils/schema.py``: ``ServeTTSRequest`` and ``ServeReferenceAudio`` (base64
  audio in JSON when longer than 255 characters).
- ``fish_speech/inference_engine/reference_loader.py``: an unknown ``reference_id`` makes an
  empty folder and speaks in a voice of the model's own (200).

Errors use the server's shape: ``{"statusCode", "message", "error"}``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import wave
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError, conint, model_validator

from harness.servers.engines import Behaviour, generate
from voxserve.audio.pcm import wav_bytes

SAMPLE_RATE = 44100  # modded_dac_vq's decoder


class ServeReferenceAudio(BaseModel):
    audio: bytes
    text: str

    @model_validator(mode="before")
    @classmethod
    def decode_audio(cls, values: Any) -> Any:
        audio = values.get("audio") if isinstance(values, dict) else None
        if isinstance(audio, str) and len(audio) > 255:
            with contextlib.suppress(binascii.Error):  # upstream: the string's own bytes then
                values["audio"] = base64.b64decode(audio)
        return values


class ServeTTSRequest(BaseModel):
    text: str
    chunk_length: Annotated[int, conint(ge=100, le=1000, strict=True)] = 200
    format: Literal["wav", "pcm", "mp3", "opus"] = "wav"
    latency: Literal["normal", "balanced"] = "normal"
    references: list[ServeReferenceAudio] = []
    reference_id: str | None = None
    seed: int | None = None
    use_memory_cache: Literal["on", "off"] = "off"
    normalize: bool = True
    streaming: bool = False
    max_new_tokens: int = 1024
    top_p: Annotated[float, Field(ge=0.1, le=1.0, strict=True)] = 0.8
    repetition_penalty: Annotated[float, Field(ge=0.9, le=2.0, strict=True)] = 1.1
    temperature: Annotated[float, Field(ge=0.1, le=1.0, strict=True)] = 0.8


def error(status: int, message: str | None, phrase: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message, "error": phrase}, status_code=status)


def reference_facts(reference: ServeReferenceAudio) -> dict[str, Any]:
    with wave.open(io.BytesIO(reference.audio), "rb") as audio:
        rate = audio.getframerate()
        return {"text": reference.text, "rate": rate, "seconds": audio.getnframes() / rate}


def unauthorized(request: Request, api_key: str | None) -> JSONResponse | None:
    """``--api-key``'s check: a Bearer token, and the right one."""
    if api_key is None:
        return None
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        return error(401, None, "Unauthorized")
    return None if header.removeprefix("Bearer ") == api_key else error(401, "Invalid token", "Unauthorized")


async def checked(request: Request, max_text_length: int) -> ServeTTSRequest | Response:
    """``MsgPackRequest.data()`` and ``views.tts``'s checks: the body, or the answer refusing it."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/json":  # msgpack is read too; this stand-in is told JSON only
        response = error(415, None, "Unsupported Media Type")
        response.headers["Accept"] = "application/msgpack, application/json, multipart/form-data"
        return response
    try:
        body = ServeTTSRequest.model_validate(json.loads(await request.body()))
    except json.JSONDecodeError as exc:
        return error(400, str(exc), "Bad Request")
    except ValidationError as exc:
        return JSONResponse(json.loads(exc.json()), status_code=422)
    if max_text_length > 0 and len(body.text) > max_text_length:
        return error(400, f"Text is too long, max length is {max_text_length}", "Bad Request")
    if body.streaming and body.format != "wav":
        return error(400, "Streaming only supports WAV format", "Bad Request")
    return body


def fishspeech_app(
    behaviour: Behaviour, api_key: str | None = None, max_text_length: int = 0, stored: tuple[str, ...] = ()
) -> FastAPI:
    """The server with ``--api-key``, ``--max-text-length`` and references stored under ``stored`` ids."""
    app = FastAPI()

    @app.api_route("/v1/health", methods=["GET", "POST"])
    async def health(request: Request) -> Response:
        return unauthorized(request, api_key) or JSONResponse({"status": "ok"})

    @app.post("/v1/tts")
    async def tts(request: Request) -> Response:
        denied = unauthorized(request, api_key)
        if denied is not None:
            return denied
        body = await checked(request, max_text_length)
        if isinstance(body, Response):
            return body
        voice = body.reference_id if body.reference_id in stored else None
        behaviour.requests.append(
            {
                "text": body.text,
                "seed": body.seed,
                "reference_id": body.reference_id,
                "voice": voice,
                "references": [reference_facts(r) for r in body.references],
                "streaming": body.streaming,
                "use_memory_cache": body.use_memory_cache,
                "temperature": body.temperature,
                "authorization": request.headers.get("authorization"),
            }
        )
        if not behaviour.up:
            return error(500, "Failed to generate speech", "Internal Server Error")
        headers = {"Content-Disposition": f"attachment; filename=audio.{body.format}"}
        if body.streaming:
            stream = generate(behaviour, body.text, SAMPLE_RATE)  # raw samples, a chunk at a time, no header
            return StreamingResponse(stream, media_type="audio/wav", headers=headers)
        if body.format not in ("wav", "mp3"):
            return error(500, "Failed to generate speech", "Internal Server Error")
        audio = np.frombuffer(b"".join([c async for c in generate(behaviour, body.text, SAMPLE_RATE)]), "<i2")
        return Response(
            wav_bytes(audio.astype(np.float32) / 32768, SAMPLE_RATE), media_type="audio/wav", headers=headers
        )

    return app
