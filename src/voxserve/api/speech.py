"""``POST /v1/audio/speech``: OpenAI's speech endpoint, plus voxserve's extensions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from voxserve.api.dependencies import get_services
from voxserve.api.schemas import (
    AUDIO_TYPES,
    SpeechBody,
    audio_content,
    cache_mode,
    json_schema_body,
    parse_json,
)
from voxserve.api.streaming import audio_response, new_request_id, sse_response
from voxserve.request import CacheMode
from voxserve.services import Services

router = APIRouter()


async def speech_body(request: Request) -> SpeechBody:
    return await parse_json(request, SpeechBody)


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    openapi_extra=json_schema_body(SpeechBody),
    responses=audio_content(*AUDIO_TYPES, "text/event-stream"),
)
async def create_speech(
    request: Request,
    body: Annotated[SpeechBody, Depends(speech_body)],
    services: Annotated[Services, Depends(get_services)],
    cache: Annotated[CacheMode, Depends(cache_mode)],
) -> StreamingResponse:
    """Speak ``input``; the body streams while later segments are still being made."""
    pipeline = services.pipeline
    plan = await pipeline.plan_in_thread(body.to_request(cache))
    request_id = new_request_id()
    if body.stream_format == "sse":
        return await sse_response(pipeline, plan, request, request_id)
    return await audio_response(pipeline, plan, request, request_id)
