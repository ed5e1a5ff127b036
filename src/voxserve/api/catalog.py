"""``GET /v1/models`` and ``GET /v1/audio/voices``: what clients can ask for."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from voxserve.api.auth import metered
from voxserve.api.dependencies import get_services
from voxserve.config import AUTO_MODEL
from voxserve.security.guard import Principal
from voxserve.services import Services

router = APIRouter()
AnyKey = Annotated[Principal, Depends(metered())]


@router.get("/v1/models", dependencies=[Depends(metered())])
async def list_models(services: Annotated[Services, Depends(get_services)]) -> dict[str, Any]:
    """Engines with the languages they speak and their voices, and the OpenAI model names that map
    onto them (OpenAI's list shape, with fields of its own)."""
    settings = services.settings
    engines = services.pipeline.engines
    data: list[dict[str, Any]] = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "voxserve",
            "engine": name,
            "languages": sorted(engine.capabilities.languages),
            "voices": [voice.id for voice in engine.capabilities.voices],
        }
        for name, engine in engines.items()
    ]
    data += [
        {"id": alias, "object": "model", "created": 0, "owned_by": "voxserve", "engine": target}
        for alias, target in settings.model_aliases.items()
        if target in engines or target == AUTO_MODEL
    ]
    return {"object": "list", "data": data}


def builtin_voices(services: Services) -> list[dict[str, Any]]:
    return [
        {
            "id": voice.id,
            "name": voice.id,
            "kind": "builtin",
            "engine": engine.name,
            "languages": list(voice.languages),
            "gender": voice.gender,
            "description": voice.description,
        }
        for engine in services.pipeline.engines.values()
        for voice in engine.capabilities.voices
    ]


@router.get("/v1/audio/voices")
async def list_voices(
    services: Annotated[Services, Depends(get_services)], principal: AnyKey
) -> dict[str, Any]:
    """Every engine's voices, the library's cloned voices and blends (the key's own), and the OpenAI
    voice aliases."""
    library = [voice.to_dict() for voice in await asyncio.to_thread(services.voices.list, principal.viewer)]
    return {"voices": builtin_voices(services) + library, "aliases": dict(services.settings.voice_aliases)}
