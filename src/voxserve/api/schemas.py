"""Request bodies, shared by the speech and job routes, and parsed the same way."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Header, Request
from pydantic import BaseModel, Field, ValidationError

from voxserve.api.errors import from_validation_errors
from voxserve.audio import FORMATS
from voxserve.errors import UnsupportedMediaType
from voxserve.request import CacheMode, SpeechOptions, SpeechRequest

Body = TypeVar("Body", bound=BaseModel)
PARSE_IN_THREAD_BYTES = 64 * 1024


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: ``{"id": "voice_..."}``."""

    id: str


class SpeechFields(SpeechOptions):
    """What to say and how: the fields of OpenAI's speech request and voxserve's extensions.

    The fields and their bounds are the request model's (:mod:`voxserve.request`); unknown
    fields are refused, as OpenAI does, naming the field.
    """

    input: str = Field(description="The text to speak.")
    voice: str | VoiceRef | None = Field(  # type: ignore[assignment]
        default=None, description='A voice id, an OpenAI voice name, or OpenAI\'s {"id": ...} object.'
    )

    def to_request(self, cache: CacheMode = "use") -> SpeechRequest:
        voice = self.voice.id if isinstance(self.voice, VoiceRef) else self.voice
        fields = self.model_dump(include=set(SpeechRequest.model_fields))
        return SpeechRequest(**{**fields, "voice": voice, "cache": cache})


#: Kokoro-FastAPI's one-letter ``lang_code`` values (Kokoro's own pipeline codes).
KOKORO_LANG_CODES = {
    "a": "en-US",
    "b": "en-GB",
    "e": "es",
    "f": "fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-BR",
    "z": "zh",
}


class SpeechBody(SpeechFields):
    """``POST /v1/audio/speech``, with Kokoro-FastAPI's ``stream`` and ``lang_code`` accepted too."""

    stream_format: Literal["audio", "sse"] = "audio"
    stream: bool = Field(default=True, description="false: the whole file, with a Content-Length")
    timestamps: bool = Field(
        default=False, description="true: JSON with the audio (base64) and where each segment is in it"
    )
    lang_code: str | None = Field(
        default=None, max_length=16, description="Kokoro-FastAPI's language (a, b, z, j, ...); as language"
    )

    def to_request(self, cache: CacheMode = "use") -> SpeechRequest:
        request = super().to_request(cache)
        if self.lang_code and not self.language:
            language = KOKORO_LANG_CODES.get(self.lang_code.lower(), self.lang_code)
            request = request.model_copy(update={"language": language})
        return request


class JobBody(SpeechFields):
    """``POST /v1/jobs``: a speech request plus how to schedule it and name its file."""

    priority: int = Field(default=0, ge=0, le=9, strict=True, description="9 runs first")
    run_at: datetime | None = Field(default=None, description="not before this time (ISO 8601 or Unix time)")
    name: str | None = Field(default=None, description="output file name, without extension")
    task_id: str | None = Field(default=None, description="alias of name, as the seed clients call it")
    metadata: dict[str, Any] = Field(default_factory=dict, description="kept with the job, up to 4 KB")
    max_attempts: int | None = Field(default=None, ge=1, le=20, strict=True)
    webhook_url: str | None = Field(
        default=None,
        max_length=2048,
        description="POSTed the job's view, signed, when it ends (default: the key's webhook_url)",
    )


async def parse_json(request: Request, model: type[Body]) -> Body:
    """Parse a JSON body ourselves: a wrong media type is a 415, bad JSON a 400 naming the field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {content_type or 'nothing'!r}",
            param="Content-Type",
        )
    try:
        body = await request.body()
        if len(body) > PARSE_IN_THREAD_BYTES:  # a book's JSON takes milliseconds to parse
            return await asyncio.to_thread(model.model_validate_json, body)
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_errors(exc.errors()) from None


def json_schema_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that parses its JSON with :func:`parse_json`.

    The model's nested definitions point into ``components/schemas``;
    :func:`hoist_definitions` moves them there when the document is built
    (left inside a path, ``#/$defs/...`` would resolve nowhere).
    """
    schema = model.model_json_schema(ref_template=f"{COMPONENTS}{{model}}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


COMPONENTS = "#/components/schemas/"


def hoist_definitions(document: dict[str, Any]) -> dict[str, Any]:
    """Move request bodies' ``$defs`` into the document's components (see :func:`json_schema_body`)."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                components.update(content.get("schema", {}).pop("$defs", {}))
    return document


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: invalid_request, unknown_voice, busy, ...")
    message: str = Field(description="what went wrong, naming the field and the limit")
    param: str | None = Field(description="the request field it concerns")


class ErrorBody(BaseModel):
    """Every error voxserve answers, whatever its status."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    "default": {
        "model": ErrorBody,
        "description": "An error: 4xx for the request, 5xx for voxserve or an engine",
    }
}


AUDIO_TYPES = tuple(sorted({f.content_type for f in FORMATS.values()}))


SSE_CONTENT = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "description": "each event: its name and its data, a JSON object",
            "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
        }
    }
}


_SEGMENT = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "text": {"type": "string"},
        "start": {"type": "number"},
        "end": {"type": "number"},
    },
}
#: ``timestamps: true``: the audio with each segment's place in it.
CAPTIONED_CONTENT = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["audio", "audio_format", "segments", "timestamps"],
            "properties": {
                "audio": {"type": "string", "description": "the whole file, base64"},
                "audio_format": {"type": "string"},
                "segments": {"type": "array", "items": _SEGMENT},
                "timestamps": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
}


def audio_content(*media: str) -> dict[int | str, dict[str, Any]]:
    """A 200 answered with audio of these media types (``text/event-stream``: SSE events;
    ``application/json``: the captioned answer)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    content = {t: {**SSE_CONTENT, **CAPTIONED_CONTENT}.get(t, binary) for t in media}
    return {200: {"description": "the audio", "content": content}}


async def cache_mode(
    cache_control: Annotated[str | None, Header(alias="Cache-Control", max_length=256)] = None,
) -> CacheMode:
    """The segment cache for a request, from its ``Cache-Control`` header (async: no thread hop).

    ``no-store``: neither read nor store; ``no-cache``: synthesize anew and
    store the result; otherwise cached segments are used.
    """
    directives = {part.strip().lower() for part in (cache_control or "").split(",")}
    if "no-store" in directives:
        return "off"
    if "no-cache" in directives:
        return "refresh"
    return "use"
