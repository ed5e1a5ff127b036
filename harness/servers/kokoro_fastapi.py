"""A stand-in for Kokoro-FastAPI's OpenAI-compatible route, as it answers.

Follows remsky/Kokoro-FastAPI@26eec068d8ce6f559afef83f68933127ac38e315
(``api/src/routers/openai_compatible.py``, ``api/src/structures/schemas.py``,
``api/src/core/openai_mappings.json``): ``POST /v1/audio/speech`` takes
``OpenAISpeechRequest`` (unknown fields such as ``instructions`` accepted and
ignored), ``model`` one of tts-1, tts-1-hd, kokoro, gpt-4o-mini-tts (else 400
``invalid_model``), OpenAI's voice names mapped to its own (alloy → am_adam,
...), an unknown voice 400 ``validation_error`` before any audio, ``pcm`` as
headerless 24 kHz s16le streamed by sentence (``stream`` defaults to true),
errors as ``{"detail": {"error", "message", "type"}}``; port 8880.
"""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from harness.servers.engines import Behaviour, generate

MODELS = ("tts-1", "tts-1-hd", "kokoro", "gpt-4o-mini-tts")
VOICES = ("af_heart", "af_bella", "af_sky", "am_adam", "am_michael", "bf_emma", "bm_george", "zf_xiaobei")
OPENAI_VOICES = {"alloy": "am_adam", "echo": "af_bella", "onyx": "bm_george", "coral": "bf_emma"}


class OpenAISpeechRequest(BaseModel):
    model: str = "kokoro"
    input: str
    voice: str = "af_heart"
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream: bool = True
    lang_code: str | None = None


def detail(status: int, error: str, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"detail": {"error": error, "message": message, "type": kind}}, status_code=status)


def kokoro_fastapi_app(behaviour: Behaviour) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/audio/speech")
    async def speech(body: OpenAISpeechRequest) -> Response:
        behaviour.requests.append(body.model_dump())
        if body.model not in MODELS:
            return detail(400, "invalid_model", f"Unsupported model: {body.model}", "invalid_request_error")
        voice = OPENAI_VOICES.get(body.voice, body.voice)
        if voice not in VOICES:
            message = f"Voice '{voice}' not found. Available voices: {', '.join(sorted(VOICES))}"
            return detail(400, "validation_error", message, "invalid_request_error")
        if body.response_format != "pcm":
            return detail(400, "validation_error", "this stand-in speaks pcm only", "invalid_request_error")
        return StreamingResponse(generate(behaviour, body.input, 24000), media_type="audio/pcm")

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "owned_by": "kokoro"} for m in MODELS],
        }

    return app
