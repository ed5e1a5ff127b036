"""``GET /v1/engines``: every engine and its instances, as the balancer sees them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from voxserve.api.auth import public_unless
from voxserve.api.dependencies import get_services
from voxserve.engines import Engine
from voxserve.engines.base import Elsewhere
from voxserve.metrics import Snapshotting
from voxserve.services import Services

router = APIRouter()


def engine_status(engine: Engine, failed: str | None = None) -> dict[str, Any]:
    """What an engine can do now: ``ready``, ``loading``, ``failed`` (to load) or ``unavailable``
    (none of its servers answers), with why, and whether it runs in this process (``here``) or on
    servers (``remote``), as ``/readyz`` and this route say."""
    remote = isinstance(engine, Elsewhere)
    down = failed or (engine.unavailable if isinstance(engine, Elsewhere) else None)
    status = "failed" if failed else "ready" if engine.ready else "unavailable" if down else "loading"
    return {"status": status, "runs": "remote" if remote else "here", **({"reason": down} if down else {})}


def engine_view(engine: Engine, failed: str | None = None) -> dict[str, Any]:
    caps = engine.capabilities
    instances = (
        engine.snapshot() if isinstance(engine, Snapshotting) else [{"url": "-", "healthy": engine.ready}]
    )
    return {
        "name": engine.name,
        "ready": engine.ready,
        **engine_status(engine, failed),
        "languages": sorted(caps.languages),
        "voices": [voice.id for voice in caps.voices],
        "sample_rate": caps.sample_rate,
        "cloning": caps.cloning,
        "clone_needs_transcript": caps.clone_needs_transcript,
        "seeded": caps.seeded,
        "instructions": caps.instructions,
        "emotions": bool(caps.emotions),
        "streaming": caps.streaming,
        "max_segment_chars": caps.max_segment_chars,
        "instances": instances,
    }


@router.get("/v1/engines", dependencies=[Depends(public_unless("public_engines"))])
async def list_engines(services: Annotated[Services, Depends(get_services)]) -> dict[str, Any]:
    failed = services.pipeline.planner.failed
    return {"engines": [engine_view(e, failed.get(e.name)) for e in services.pipeline.engines.values()]}
