"""``POST /v1/audio/speech``: OpenAI's speech endpoint, plus voxserve's extensions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voxserve.api.errors import from_validation_errors
from voxserve.api.services import Services, get_services
from voxserve.api.streaming import audio_response, new_request_id, sse_response
from voxserve.errors import UnsupportedMediaType
from voxserve.pipeline import SpeechRequest

router = APIRouter()


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: ``{"id": "voice_..."}``."""

    id: str


class SpeechBody(BaseModel):
    """The JSON body. Unknown fields are refused, as OpenAI does, naming the field."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="The text to speak.")
    model: str | None = Field(default=None, description="Engine, or an OpenAI model name mapped onto one.")
    voice: str | VoiceRef | None = Field(default=None, description="A voice id or an OpenAI voice name.")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=4096)
    stream_format: Literal["audio", "sse"] = "audio"
    language: str | None = Field(default=None, max_length=16, description="en, zh or ja; detected if absent")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    pitch: float = Field(default=0.0, ge=-12.0, le=12.0, description="semitones")
    emotion: str | None = Field(default=None, max_length=64)
    sample_rate: int | None = Field(default=None, description="output sample rate in Hz")

    def to_request(self) -> SpeechRequest:
        voice = self.voice.id if isinstance(self.voice, VoiceRef) else self.voice
        return SpeechRequest(
            input=self.input,
            model=self.model,
            voice=voice,
            response_format=self.response_format,
            speed=self.speed,
            pitch=self.pitch,
            language=self.language,
            seed=self.seed,
            emotion=self.emotion,
            instructions=self.instructions,
            sample_rate=self.sample_rate,
        )


async def json_body(request: Request) -> SpeechBody:
    """Parse the body ourselves so a wrong media type is a 415 and bad JSON a named 400."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {content_type or 'nothing'!r}",
            param="Content-Type",
        )
    try:
        return SpeechBody.model_validate_json(await request.body())
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from None


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SpeechBody.model_json_schema()}},
        }
    },
    responses={200: {"content": {"audio/mpeg": {}, "text/event-stream": {}}}},
)
async def create_speech(
    body: Annotated[SpeechBody, Depends(json_body)],
    services: Annotated[Services, Depends(get_services)],
) -> StreamingResponse:
    """Speak ``input``; the body streams while later segments are still being made."""
    pipeline = services.pipeline
    plan = pipeline.plan(body.to_request())
    request_id = new_request_id()
    if body.stream_format == "sse":
        return await sse_response(pipeline, plan, request_id)
    return await audio_response(pipeline, plan, request_id)
