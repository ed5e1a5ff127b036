"""``POST /tts``: the form API that existing EmotiVoice/CosyVoice clients call.

Clients written against those deployments (``requests.post(url + "/tts",
data={...}, timeout=300)`` then writing ``output.wav``) work unchanged. Form
fields: ``text``, ``emotion``, ``speed``, ``pitch``, ``output_format``
(wav | mp3 | ogg), ``seed``, ``task_id`` (names the file), ``voice``,
``model``, ``language``, and a cloning reference as an uploaded
``reference_audio`` file (or the id or name of a library voice), an
``audio_path`` inside ``references.dirs``, or
an allowed URL in ``audio_path``, with ``prompt_text``: what the reference
says (GLM-TTS needs it; CosyVoice clones more closely with it). A reference is checked and stored in the
voice library like any upload, so sending the same one again costs nothing.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.responses import StreamingResponse

from voxserve.api.admission import admitted_plan
from voxserve.api.auth import user
from voxserve.api.dependencies import get_services
from voxserve.api.request_ids import current_request_id
from voxserve.api.schemas import audio_content, cache_mode
from voxserve.api.streaming import file_response
from voxserve.api.uploads import read_upload
from voxserve.audio import FORMATS
from voxserve.errors import UnsupportedMediaType
from voxserve.jobs.files import NAME_PATTERN
from voxserve.request import CacheMode, SpeechRequest, bounds
from voxserve.security.guard import Principal
from voxserve.services import Services

router = APIRouter()

#: The seeds' format names, as voxserve's.
OUTPUT_FORMATS = {"wav": "wav", "mp3": "mp3", "ogg": "opus"}
TASK_ID_PATTERN = NAME_PATTERN.pattern  # names the file: the job files' own rule
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def form_data(
    content_type: Annotated[str | None, Header(alias="Content-Type", include_in_schema=False)] = None,
) -> None:
    """``/tts`` reads form fields, as the EmotiVoice/CosyVoice clients send them: a JSON body is a 415."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in FORM_TYPES:
        raise UnsupportedMediaType(
            f"/tts takes form data (multipart/form-data or application/x-www-form-urlencoded), got "
            f"{kind or 'no Content-Type'!r}; for JSON use POST /v1/audio/speech",
            param="Content-Type",
        )


@router.post(
    "/tts",
    response_class=StreamingResponse,
    dependencies=[Depends(form_data)],
    responses=audio_content(*sorted({FORMATS[name].content_type for name in OUTPUT_FORMATS.values()})),
)
async def tts(
    http: Request,
    services: Annotated[Services, Depends(get_services)],
    cache: Annotated[CacheMode, Depends(cache_mode)],
    principal: Annotated[Principal, Depends(user("speech"))],
    text: Annotated[str, Form(description="The text to speak.")],
    emotion: Annotated[str | None, Form(max_length=64)] = None,
    speed: Annotated[float, Form(**bounds("speed"), allow_inf_nan=False)] = 1.0,
    pitch: Annotated[float, Form(**bounds("pitch"), allow_inf_nan=False, description="semitones")] = 0.0,
    output_format: Annotated[Literal["wav", "mp3", "ogg"], Form()] = "wav",
    seed: Annotated[int | None, Form(**bounds("seed"))] = None,
    task_id: Annotated[str | None, Form(pattern=TASK_ID_PATTERN)] = None,
    voice: Annotated[str | None, Form()] = None,
    model: Annotated[str | None, Form()] = None,
    language: Annotated[str | None, Form(max_length=16)] = None,
    audio_path: Annotated[str | None, Form(max_length=4096)] = None,
    prompt_text: Annotated[
        str | None, Form(max_length=1000, description="what the reference audio says")
    ] = None,
    reference_audio: Annotated[
        UploadFile | str | None, File(description="a recording to clone, or a library voice's id or name")
    ] = None,
) -> StreamingResponse:
    """Speak ``text`` and answer with the whole audio file (``{task_id}.wav`` when a task id is given).

    Made before the answer starts, so it has a Content-Length and a WAV's
    header carries its real lengths: these clients save the body as it is.
    """
    if isinstance(reference_audio, str):  # a voice already in the library
        voice = (
            await asyncio.to_thread(
                services.voices.require, reference_audio, "reference_audio", principal.viewer
            )
        ).id
    elif reference_audio is not None:
        data = await read_upload(reference_audio, services.settings.references.max_bytes, "reference_audio")
        services.pipeline.selection.require_cloning(model, "reference_audio")
        voice = (await services.references.add(data, prompt_text=prompt_text, owner=principal.owner))[0].id
    elif audio_path:
        services.pipeline.selection.require_cloning(model, "audio_path")
        voice = (await services.references.named(audio_path, "audio_path", prompt_text, principal.owner)).id
    request = SpeechRequest(
        input=text,
        model=model,
        voice=voice,
        response_format=OUTPUT_FORMATS[output_format],
        speed=speed,
        pitch=pitch,
        language=language,
        seed=seed,
        emotion=emotion,
        cache=cache,
    )
    plan, headers, caller = await admitted_plan(services, principal, request)
    request_id = current_request_id()
    filename = f"{task_id or request_id}.{output_format}"
    response = await file_response(services.pipeline, plan, http, request_id, filename, caller)
    response.headers.update(headers)
    return response
