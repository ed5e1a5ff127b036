"""The task API of hand-built GLM-TTS queues: ``POST /api/synthesis``, ``GET /api/task/{taskId}``.

Clients written for it keep working: a task is a voxserve job whose id has
the ``task_<ms timestamp>_<random>`` shape and whose file is named after
``outputName`` (or the task id).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from voxserve.api.admission import job_charge
from voxserve.api.auth import metered, user
from voxserve.api.dependencies import get_services
from voxserve.api.schemas import json_schema_body, parse_json
from voxserve.audio import FORMATS
from voxserve.jobs import Job, JobNotFound, JobStatus, new_task_id
from voxserve.pipeline import SpeechRequest
from voxserve.security.guard import Principal
from voxserve.services import Services

router = APIRouter()

STATUS = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}


class SynthesisBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    audio: str | None = Field(default=None, description="reference audio path or URL (voice cloning)")
    promptText: str | None = Field(default=None, max_length=1000, description="what the reference says")
    outputName: str | None = None
    voice: str | None = None
    model: str | None = None
    output_format: str = Field(default="wav", pattern="^(wav|mp3|opus|flac|aac|pcm)$")


async def synthesis_body(request: Request) -> SynthesisBody:
    return await parse_json(request, SynthesisBody)


def task_view(job: Job) -> dict[str, Any]:
    extension = FORMATS[str(job.request["response_format"])].extension
    done = job.status is JobStatus.SUCCEEDED
    error = job.error_message or ("canceled" if job.status is JobStatus.CANCELED else None)
    return {
        "taskId": job.id,
        "status": STATUS[job.status],
        "outputPath": f"jobs/{job.id}/{job.name}.{extension}" if done else None,
        "outputUrl": f"/v1/jobs/{job.id}/audio" if done else None,
        "error": error,
    }


@router.post("/api/synthesis", openapi_extra=json_schema_body(SynthesisBody))
async def create_task(
    body: Annotated[SynthesisBody, Depends(synthesis_body)],
    services: Annotated[Services, Depends(get_services)],
    principal: Annotated[Principal, Depends(user("jobs"))],
) -> dict[str, Any]:
    voice = body.voice
    if body.audio:  # a task queue client sends a path or URL of the speaker's recording
        services.pipeline.selection.require_cloning(body.model, "audio")
        voice = (await services.references.named(body.audio, "audio", body.promptText, principal.owner)).id
    request = SpeechRequest(
        input=body.text,
        model=body.model,
        voice=voice,
        response_format=body.output_format,
    )
    charge = job_charge(services, principal, request)
    job, _ = await services.jobs.submit(
        request,
        job_id=new_task_id(),
        name=body.outputName,
        charge=charge,
        owner=principal.owner,
        sees_all=principal.sees_all,
        default_webhook_url=principal.webhook_url,
    )
    return {"taskId": job.id, "status": STATUS[job.status]}


@router.get("/api/task/{task_id}")
async def get_task(
    task_id: str,
    services: Annotated[Services, Depends(get_services)],
    principal: Annotated[Principal, Depends(metered("jobs"))],
) -> dict[str, Any]:
    job = await services.store.get(task_id)
    if job is None or not principal.sees(job.owner):
        raise JobNotFound(f"task {task_id!r} does not exist (or has expired)", param="taskId")
    return task_view(job)
