"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import HTTPConnection

from voxserve.api.auth import principal_of, public_unless
from voxserve.api.browser import UNLISTED_HOST
from voxserve.api.dependencies import get_services
from voxserve.api.engines import engine_status
from voxserve.errors import VoxserveError
from voxserve.services import Services
from voxserve.storage import StorageError

router = APIRouter()
STORE_PING_TIMEOUT = 1.0


def _store_failures(services: Services) -> tuple[type[Exception], ...]:
    """What a job store that does not answer in time raises."""
    return (TimeoutError, *services.store.errors)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 as soon as the process answers HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "loading, failed, or degraded (the reason is given)"}})
async def readyz(
    connection: HTTPConnection, services: Annotated[Services, Depends(get_services)]
) -> JSONResponse:
    """200 once this process can serve: its own engines loaded, and the job store, workers and
    background tasks well.

    Engines on other servers do not hold it back (a gateway whose engines all live elsewhere is
    ready once it has started): ``engines`` gives each one's status, ``unavailable`` with the
    reason when none of its instances answers. 503 otherwise, saying which: ``loading``;
    ``failed`` (engines did not load); ``degraded`` (the job store does not answer, a worker's
    store calls fail, or a background task ended). ``notices`` names engines that serve but offer
    less than they could (Kokoro without its voice set).

    With keys on, a caller without a valid key (a probe, anyone who can reach the port) gets the
    statuses only: the reasons name engine servers and their errors.
    """
    failed = services.pipeline.planner.failed
    engines = {name: engine_status(e, failed.get(name)) for name, e in services.pipeline.engines.items()}
    notices = {name: e.notice for name, e in services.pipeline.engines.items() if e.ready and e.notice}
    problems = dict(services.task_failures())
    try:
        await asyncio.wait_for(services.store.ping(), STORE_PING_TIMEOUT)
    except _store_failures(services) as exc:
        problems["store"] = f"{type(exc).__name__}: {exc}"
    workers = [asdict(worker) for worker in services.worker_health()]
    problems.update({f"worker {w['id']}": str(w["last_error"]) for w in workers if not w["healthy"]})
    body: dict[str, object] = {
        "engines": engines,
        "workers": workers,
        **({"notices": notices} if notices else {}),
    }
    if services.pipeline.ready and not problems:
        body.update(status="ready")
    elif services.load_error:
        body.update(status="failed", error=services.load_error)
    elif problems:
        body.update(status="degraded", problems=problems)
    else:
        body.update(status="loading")
    if not await _may_read_why(connection, services):
        body = {"status": body["status"], "engines": {n: {"status": e["status"]} for n, e in engines.items()}}
    if body["status"] == "ready":
        return JSONResponse(body)
    return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})


async def _may_read_why(connection: HTTPConnection, services: Services) -> bool:
    """Keys off, or a valid key, and a host this service answers (not a probe's pod address, nor
    a name rebound to it): the caller may read what is wrong and where."""
    if getattr(connection.state, UNLISTED_HOST, False):
        return False
    if not services.settings.auth.enabled:
        return True
    refused: tuple[type[Exception], ...] = (VoxserveError, *services.guard.keys.errors)
    try:
        await principal_of(connection, services)
    except refused:
        return False
    return True


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    dependencies=[Depends(public_unless("public_metrics", "admin"))],
)
async def metrics(services: Annotated[Services, Depends(get_services)]) -> Response:
    """Prometheus text format; the job counts are read from the store now (not if it does not answer)."""
    try:
        counts = await asyncio.wait_for(services.store.counts(), STORE_PING_TIMEOUT)
    except _store_failures(services):
        counts = {}
    for state, count in counts.items():
        services.metrics.jobs.labels(state).set(count)
    with contextlib.suppress(StorageError):
        services.metrics.job_storage_bytes.set(await asyncio.to_thread(services.files.usage))
    services.metrics.job_storage_limit_bytes.set(services.settings.jobs.disk_limit_bytes)
    body = await asyncio.to_thread(generate_latest, services.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
