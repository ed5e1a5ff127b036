"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from voxserve.api.services import Services, get_services

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 as soon as the process answers HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    """200 once every engine is loaded and warm; 503 (with the reason if loading failed) before."""
    engines = {name: engine.ready for name, engine in services.pipeline.engines.items()}
    if services.pipeline.ready:
        return JSONResponse({"status": "ready", "engines": engines})
    body = {"status": "failed" if services.load_error else "loading", "engines": engines}
    if services.load_error:
        body["error"] = services.load_error
    return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})


@router.get("/metrics")
async def metrics(services: Annotated[Services, Depends(get_services)]) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
