"""``/v1/lexicons``: pronunciation lexicons, owned like voices (see :mod:`voxserve.voices.lexicons`).

``POST`` makes one (201), ``PUT /v1/lexicons/{id}`` replaces it whole, ``GET`` lists or shows them,
``DELETE`` removes one. A lexicon marked ``default`` applies to every request of its key that names
no ``lexicons``; a request's ``lexicons`` names those it wants instead.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from voxserve.api.auth import metered
from voxserve.api.dependencies import get_services
from voxserve.security.guard import Principal
from voxserve.services import Services
from voxserve.voices.lexicons import LexiconBody

router = APIRouter()
LexiconUser = Annotated[Principal, Depends(metered("voices"))]
ServicesDep = Annotated[Services, Depends(get_services)]


@router.post("/v1/lexicons", status_code=201)
async def create_lexicon(body: LexiconBody, services: ServicesDep, principal: LexiconUser) -> dict[str, Any]:
    """Store a lexicon under a name of its owner's own (409 if the owner has one so named)."""
    lexicons = services.pipeline.planner.lexicons
    return (await asyncio.to_thread(lexicons.create, body, principal.owner)).to_dict()


@router.get("/v1/lexicons")
async def list_lexicons(services: ServicesDep, principal: LexiconUser) -> dict[str, Any]:
    """The lexicons (with keys: the key's own), oldest first."""
    found = await asyncio.to_thread(services.pipeline.planner.lexicons.list, principal.viewer)
    return {"lexicons": [lexicon.to_dict() for lexicon in found]}


@router.get("/v1/lexicons/{lexicon_id}")
async def get_lexicon(lexicon_id: str, services: ServicesDep, principal: LexiconUser) -> dict[str, Any]:
    lexicons = services.pipeline.planner.lexicons
    return (await asyncio.to_thread(lexicons.require, lexicon_id, principal.viewer)).to_dict()


@router.put("/v1/lexicons/{lexicon_id}")
async def replace_lexicon(
    lexicon_id: str, body: LexiconBody, services: ServicesDep, principal: LexiconUser
) -> dict[str, Any]:
    """Replace a lexicon's name, entries and default; requests planned after it read the new entries."""
    lexicons = services.pipeline.planner.lexicons
    return (await asyncio.to_thread(lexicons.replace, lexicon_id, body, principal.viewer)).to_dict()


@router.delete("/v1/lexicons/{lexicon_id}")
async def delete_lexicon(lexicon_id: str, services: ServicesDep, principal: LexiconUser) -> dict[str, Any]:
    """Remove a lexicon; jobs still queued that use it fail with ``lexicon_not_found``."""
    lexicon = await asyncio.to_thread(services.pipeline.planner.lexicons.delete, lexicon_id, principal.viewer)
    return {"id": lexicon.id, "deleted": True}
