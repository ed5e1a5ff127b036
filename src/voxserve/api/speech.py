"""``POST /v1/audio/speech``: OpenAI's speech endpoint, plus voxserve's extensions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from voxserve.api.admission import admitted_plan
from voxserve.api.auth import user
from voxserve.api.dependencies import get_services
from voxserve.api.request_ids import current_request_id
from voxserve.api.schemas import (
    AUDIO_TYPES,
    SpeechBody,
    audio_content,
    cache_mode,
    json_schema_body,
    parse_json,
)
from voxserve.api.streaming import (
    audio_response,
    captioned_response,
    file_response,
    sse_response,
)
from voxserve.request import CacheMode
from voxserve.security.guard import Principal
from voxserve.services import Services

router = APIRouter()


async def speech_body(request: Request) -> SpeechBody:
    return await parse_json(request, SpeechBody)


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    openapi_extra=json_schema_body(SpeechBody),
    responses=audio_content(*AUDIO_TYPES, "text/event-stream", "application/json"),
)
async def create_speech(
    request: Request,
    body: Annotated[SpeechBody, Depends(speech_body)],
    services: Annotated[Services, Depends(get_services)],
    cache: Annotated[CacheMode, Depends(cache_mode)],
    principal: Annotated[Principal, Depends(user("speech"))],
) -> Response:
    """Speak ``input``; the body streams while later segments are still being made (``timestamps``:
    JSON with the whole audio and each segment's place in it)."""
    listening = body.stream_format == "sse" or (body.stream and not body.timestamps)
    plan, headers, caller = await admitted_plan(services, principal, body.to_request(cache), listening)
    request_id = current_request_id()
    response: Response
    if body.stream_format == "sse":
        response = await sse_response(services.pipeline, plan, request, request_id, caller)
    elif body.timestamps:
        response = await captioned_response(services.pipeline, plan, request, request_id, caller)
    elif body.stream:
        response = await audio_response(services.pipeline, plan, request, request_id, caller)
    else:
        filename = f"speech.{plan.audio_format.extension}"
        response = await file_response(services.pipeline, plan, request, request_id, filename, caller)
    response.headers.update(headers)
    return response
