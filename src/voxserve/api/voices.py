"""``/v1/voices``: the voice library. Register a voice once, then use its id or name anywhere.

``POST /v1/voices`` takes multipart form data: either ``audio`` (a reference
recording; ``prompt_text`` is its transcript, which CosyVoice's zero-shot
cloning needs) or ``blend`` (a formula such as ``"jf_alpha(2)+jm_kumo(1)"``),
with a ``name``. It answers 201 with the voice, or 200 with the existing
voice when the same audio (or blend) was stored before.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, StreamingResponse

from voxserve.api.admission import admitted_plan
from voxserve.api.auth import metered, user
from voxserve.api.catalog import builtin_voices
from voxserve.api.dependencies import get_services
from voxserve.api.request_ids import current_request_id
from voxserve.api.schemas import AUDIO_TYPES, audio_content
from voxserve.api.stored import stored_response
from voxserve.api.streaming import audio_response
from voxserve.api.uploads import read_upload
from voxserve.client.outputs import ResponseFormat
from voxserve.errors import Conflict, InvalidRequest, UnknownVoice
from voxserve.request import SpeechRequest
from voxserve.security.guard import Principal
from voxserve.services import Services
from voxserve.voices.library import check_name

router = APIRouter()
VoiceUser = Annotated[Principal, Depends(metered("voices"))]

PREVIEW_TEXT = {
    "zh": "你好，这是我的声音。",
    "ja": "こんにちは、これは私の声です。",
    "en": "Hello, this is my voice.",
}


@router.post("/v1/voices", status_code=201, responses={200: {"description": "the voice, stored before"}})
async def create_voice(
    response: Response,
    services: Annotated[Services, Depends(get_services)],
    principal: VoiceUser,
    name: Annotated[str | None, Form(max_length=64)] = None,
    prompt_text: Annotated[str | None, Form(max_length=1000, description="what the reference says")] = None,
    language: Annotated[str | None, Form(max_length=16)] = None,
    blend: Annotated[str | None, Form(max_length=400, description='e.g. "jf_alpha(2)+jm_kumo(1)"')] = None,
    engine: Annotated[str | None, Form(description="the engine whose voices a blend mixes")] = None,
    audio: UploadFile | None = None,
) -> dict[str, Any]:
    """Store a cloned voice (``audio``) or a named blend (``blend``)."""
    name = check_name(name) if name is not None else None
    if name is not None and services.pipeline.selection.is_builtin(name):
        raise Conflict(
            f"{name!r} is an engine's own voice (or an alias of one); choose another name", param="name"
        )
    if (audio is None) == (blend is None):
        raise InvalidRequest("send either an audio file or a blend formula", param="audio")
    if blend is not None:
        if name is None:
            raise InvalidRequest("a blend needs a name to be saved under", param="name")
        blend_engine = services.pipeline.selection.blend_engine(blend, engine)
        voice, created = await asyncio.to_thread(
            services.voices.add_blend, name, blend, blend_engine, principal.owner
        )
    else:
        assert audio is not None
        data = await read_upload(audio, services.settings.references.max_bytes, "audio")
        voice, created = await services.references.add(data, name, prompt_text, language, principal.owner)
    if not created:
        response.status_code = 200
    answer = voice.to_dict()
    if voice.kind == "cloned" and not services.pipeline.selection.can_clone():
        answer["warning"] = (
            "stored, but no engine here can clone voices from reference audio; "
            "configure one that can (docs/engines.md) to speak with this voice"
        )
    return answer


@router.get("/v1/voices")
async def list_library(
    services: Annotated[Services, Depends(get_services)], principal: VoiceUser
) -> dict[str, Any]:
    """The library's voices (with keys: the key's own), then every engine's built-in voices."""
    library = [voice.to_dict() for voice in await asyncio.to_thread(services.voices.list, principal.viewer)]
    return {"voices": library + builtin_voices(services)}


@router.get("/v1/voices/{voice_id}")
async def get_voice(
    voice_id: str, services: Annotated[Services, Depends(get_services)], principal: VoiceUser
) -> dict[str, Any]:
    voice = await asyncio.to_thread(services.voices.get, voice_id, principal.viewer)
    if voice is not None:
        return voice.to_dict()
    builtin = next((v for v in builtin_voices(services) if v["id"] == voice_id), None)
    if builtin is None:
        raise UnknownVoice(f"voice {voice_id!r} does not exist", param="voice_id")
    return builtin


@router.delete("/v1/voices/{voice_id}")
async def delete_voice(
    voice_id: str, services: Annotated[Services, Depends(get_services)], principal: VoiceUser
) -> dict[str, Any]:
    """Remove a library voice (built-in voices cannot be removed); jobs still queued that name it
    will fail with ``unknown_voice``."""
    voice = await asyncio.to_thread(services.voices.delete, voice_id, principal.viewer)
    return {"id": voice.id, "deleted": True}


@router.get("/v1/voices/{voice_id}/audio", response_class=FileResponse, responses=audio_content("audio/wav"))
async def voice_audio(
    voice_id: str, services: Annotated[Services, Depends(get_services)], principal: VoiceUser
) -> Response:
    """A cloned voice's stored reference: the normalized 24 kHz mono 16-bit WAV."""
    voice = await asyncio.to_thread(services.voices.require, voice_id, "voice_id", principal.viewer)
    if voice.kind != "cloned":
        raise InvalidRequest(f"voice {voice_id!r} is a blend; it has no reference audio", param="voice_id")
    return await stored_response(
        services.voices.artifacts,
        services.voices.audio_key(voice),
        "audio/wav",
        f"{voice.id}.wav",
        None,
        UnknownVoice(f"the audio of voice {voice_id!r} is no longer stored", param="voice_id"),
    )


@router.get(
    "/v1/voices/{voice_id}/preview", response_class=StreamingResponse, responses=audio_content(*AUDIO_TYPES)
)
async def preview_voice(
    http: Request,
    voice_id: str,
    services: Annotated[Services, Depends(get_services)],
    principal: Annotated[Principal, Depends(user("speech"))],
    text: Annotated[str | None, Query(max_length=200)] = None,
    response_format: Annotated[ResponseFormat, Query()] = "mp3",
) -> StreamingResponse:
    """A short sample in the voice, through the same pipeline as any request."""
    voice = await asyncio.to_thread(services.voices.get, voice_id, principal.viewer)
    language = (voice.language if voice else None) or "en"
    default_text = PREVIEW_TEXT.get(language.split("-")[0], PREVIEW_TEXT["en"])
    request = SpeechRequest(
        input=text or default_text,
        voice=voice_id,
        model=voice.engine if voice and voice.engine else None,
        response_format=response_format,
    )
    plan, headers, caller = await admitted_plan(services, principal, request, listening=True)
    response = await audio_response(services.pipeline, plan, http, current_request_id(), caller)
    response.headers.update(headers)
    return response
