"""``/v1/jobs``: durable synthesis jobs for texts of any length.

Submit (202), poll, list, cancel, download (with Range), listen while the job
is still running, and follow its status as Server-Sent Events or over a
WebSocket. A job's audio is the same pipeline's output, written to storage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool
from starlette.websockets import WebSocketDisconnect

from voxserve.api.admission import job_charge
from voxserve.api.auth import metered, principal_of, user
from voxserve.api.dependencies import get_services
from voxserve.api.schemas import (
    AUDIO_TYPES,
    SSE_CONTENT,
    JobBody,
    audio_content,
    cache_mode,
    json_schema_body,
    parse_json,
)
from voxserve.api.stored import stored_response
from voxserve.audio import FORMATS, AudioFormat
from voxserve.captions import CAPTION_FORMATS, CaptionLevel, file_name
from voxserve.errors import JobNotSucceeded, VoxserveError
from voxserve.jobs import Job, JobNotFound, JobStatus, new_job_id
from voxserve.jobs.view import job_view
from voxserve.request import CacheMode
from voxserve.security.guard import Principal
from voxserve.services import Services

router = APIRouter()
READ_BLOCK = 64 * 1024  # bytes read per step while following a running job
WATCH_INTERVAL = 0.25


async def owned_job(services: Services, job_id: str, principal: Principal) -> Job:
    """The job, if the principal may see it: another key's job does not exist for it (404, not 403)."""
    job = await services.store.get(job_id)
    if job is None or not principal.sees(job.owner):
        raise JobNotFound(f"job {job_id!r} does not exist (or has expired)", param="id")
    return job


JobReader = Annotated[Principal, Depends(metered("jobs"))]


async def job_body(request: Request) -> JobBody:
    return await parse_json(request, JobBody)


@router.post("/v1/jobs", status_code=202, openapi_extra=json_schema_body(JobBody))
async def create_job(
    body: Annotated[JobBody, Depends(job_body)],
    services: Annotated[Services, Depends(get_services)],
    cache: Annotated[CacheMode, Depends(cache_mode)],
    principal: Annotated[Principal, Depends(user("jobs"))],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    """Queue a job; the same ``Idempotency-Key`` and body return the same job."""
    request = body.to_request(cache)
    job, created = await services.jobs.submit(
        request,
        job_id=new_job_id(),
        name=body.name or body.task_id,
        priority=body.priority,
        run_at=body.run_at,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
        max_attempts=body.max_attempts,
        charge=job_charge(services, principal, request),
        owner=principal.owner,
        sees_all=principal.sees_all,
        webhook_url=body.webhook_url,
        default_webhook_url=principal.webhook_url,
    )
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_view(job), status_code=202, headers=headers)


@router.get("/v1/webhooks/secret")
async def webhook_secret(
    services: Annotated[Services, Depends(get_services)], principal: JobReader
) -> dict[str, Any]:
    """The secret this key's job webhooks are signed with (``Voxserve-Signature``), and its default URL."""
    return {
        "secret": await services.webhooks.secret_for(principal.owner),
        "signature_header": "Voxserve-Signature",
        "webhook_url": services.webhooks.url_for(None, principal.webhook_url),
    }


@router.get("/v1/jobs")
async def list_jobs(
    services: Annotated[Services, Depends(get_services)],
    principal: JobReader,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(description="id of the last job of the previous page")] = None,
) -> dict[str, Any]:
    """Newest first; follow ``next`` for the next page."""
    owner = None if principal.sees_all else principal.owner
    jobs = await services.store.list_jobs(status, limit + 1, before, owner)
    page = jobs[:limit]
    has_more = len(jobs) > limit
    return {
        "object": "list",
        "data": [job_view(job) for job in page],
        "has_more": has_more,
        "next": page[-1].id if has_more else None,
    }


@router.get("/v1/jobs/{job_id}")
async def get_job(
    job_id: str, services: Annotated[Services, Depends(get_services)], principal: JobReader
) -> dict[str, Any]:
    return job_view(await owned_job(services, job_id, principal))


@router.delete("/v1/jobs/{job_id}")
async def cancel_job(
    job_id: str, services: Annotated[Services, Depends(get_services)], principal: JobReader
) -> dict[str, Any]:
    """Cancel: a queued job at once, a running one at its next segment (freeing the engine)."""
    await owned_job(services, job_id, principal)
    return job_view(await services.store.cancel(job_id))


def _format(job: Job) -> AudioFormat:
    return FORMATS[str(job.request.get("response_format", "mp3"))]


@router.get(
    "/v1/jobs/{job_id}/audio", response_class=StreamingResponse, responses=audio_content(*AUDIO_TYPES)
)
async def job_audio(
    job_id: str,
    services: Annotated[Services, Depends(get_services)],
    principal: JobReader,
    range_header: Annotated[str | None, Header(alias="Range", max_length=1024)] = None,
) -> Response:
    """The finished file (Range supported); while the job runs, the audio so far and then the rest."""
    job = await owned_job(services, job_id, principal)
    audio_format = _format(job)
    if job.status is JobStatus.SUCCEEDED:
        name = f"{job.name}.{audio_format.extension}"
        return await stored_response(
            services.files.artifacts,
            services.files.key(job.id, name),
            audio_format.content_type,
            name,
            range_header,
            JobNotFound(f"the audio of job {job_id!r} is no longer stored", param="id"),
        )
    if job.terminal:
        raise JobNotSucceeded(f"job {job_id!r} is {job.status.value}; it has no audio", param="id")
    follow = _follow if services.files.in_place else _follow_parts
    return StreamingResponse(
        follow(services, job, audio_format),
        media_type=audio_format.content_type,
        headers={"Content-Disposition": f'attachment; filename="{job.name}.{audio_format.extension}"'},
    )


@router.get(
    "/v1/jobs/{job_id}/captions",
    responses={
        200: {
            "description": "SRT, WebVTT, or the segments as JSON",
            "content": {media: {"schema": {"type": "string"}} for media in CAPTION_FORMATS.values()},
        }
    },
)
async def job_captions(
    job_id: str,
    services: Annotated[Services, Depends(get_services)],
    principal: JobReader,
    format: Annotated[Literal["srt", "vtt", "json"], Query(description="srt, vtt or json")] = "srt",
    level: Annotated[
        CaptionLevel, Query(description="a cue per line (segment), or per word where the engine tells")
    ] = "line",
) -> Response:
    """A finished job's captions: each segment's text (or word) where its speech is in the audio."""
    job = await owned_job(services, job_id, principal)
    if job.status is not JobStatus.SUCCEEDED:
        raise JobNotSucceeded(
            f"job {job_id!r} is {job.status.value}; captions come with its audio", param="id"
        )
    name = file_name(job.name, format, level)
    return await stored_response(
        services.files.artifacts,
        services.files.key(job.id, name),
        CAPTION_FORMATS[format],
        name,
        None,
        JobNotFound(f"the captions of job {job_id!r} are not stored", param="id"),
    )


async def _follow(services: Services, job: Job, audio_format: AudioFormat) -> AsyncIterator[bytes]:
    """The job's encoded stream as the worker writes it, then the rest until the job ends.

    The worker encodes each segment once, as it finishes; a listener only
    reads bytes (in a thread), so a listener joining at hour three costs a
    file read, not three hours of encoding on the event loop. The file is
    opened once: when the job succeeds it is renamed, not copied, and the
    open handle reads on to its end.
    """
    source: BinaryIO | None = None
    try:
        async for snapshot in services.store.watch(job.id, WATCH_INTERVAL):
            if source is None:
                source = await asyncio.to_thread(
                    services.files.open_running, job.id, job.name, audio_format.extension
                )
            if source is not None:
                while block := await asyncio.to_thread(source.read, READ_BLOCK):
                    yield block
            if snapshot.terminal:
                return
    finally:
        if source is not None:
            source.close()


async def _follow_parts(services: Services, job: Job, audio_format: AudioFormat) -> AsyncIterator[bytes]:
    """The same, from shared storage: the live parts the worker puts as segments finish, then the
    finished file from where the parts ended (its bytes are the parts' bytes, then the rest)."""
    files = services.files
    sent = 0
    async for snapshot in services.store.watch(job.id, WATCH_INTERVAL):
        if snapshot.terminal:
            if snapshot.status is JobStatus.SUCCEEDED:
                rest = files.artifacts.read(files.key(job.id, f"{job.name}.{audio_format.extension}"), sent)
                async for block in iterate_in_threadpool(rest):
                    yield block
            return
        while blocks := await asyncio.to_thread(files.live_since, job.id, sent):
            for block in blocks:
                sent += len(block)
                yield block


def _event(job: Job) -> bytes:
    return f"event: {job.status.value}\ndata: {json.dumps(job_view(job))}\n\n".encode()


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"description": "Server-Sent Events", "content": SSE_CONTENT}},
)
async def job_events(
    job_id: str, services: Annotated[Services, Depends(get_services)], principal: JobReader
) -> StreamingResponse:
    """Server-Sent Events: the current state at once, then every change, until the job ends."""
    await owned_job(services, job_id, principal)

    async def events() -> AsyncIterator[bytes]:
        async for job in services.store.watch(job_id, WATCH_INTERVAL):
            yield _event(job)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.websocket("/v1/jobs/{job_id}/ws")
async def job_socket(websocket: WebSocket, job_id: str) -> None:
    """The same events as JSON messages over a WebSocket; closes (1000) when the job ends.

    Refusals close it with 4000 + the HTTP status (4401 no key, 4403 scope, 4404 no such job,
    4429 a limit) and the error's message as the reason.
    """
    services: Services = websocket.app.state.services
    await websocket.accept()
    try:
        principal = await principal_of(websocket, services)
        principal.require("jobs")
        await services.guard.admit(principal)
        await owned_job(services, job_id, principal)
    except VoxserveError as exc:
        await websocket.close(code=4000 + exc.status_code, reason=exc.message[:120])
        return
    try:
        async for job in services.store.watch(job_id, WATCH_INTERVAL):
            await websocket.send_json(job_view(job))
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return
