"""Jobs: durable synthesis requests whose audio goes to storage instead of a socket."""

from __future__ import annotations

from pathlib import Path

from voxserve.config import Backend
from voxserve.errors import IdempotencyConflict, JobNotFound
from voxserve.jobs.models import TERMINAL, Job, JobStatus, Progress, new_job_id, new_task_id
from voxserve.jobs.store import JobStore, request_hash


def open_store(backend: Backend, prefix: str = "voxserve") -> JobStore:
    """The job store in ``backend`` (``Settings.queue_backend``); each is imported only when chosen."""
    if backend.kind == "redis":
        from voxserve.jobs.redis import RedisJobStore

        return RedisJobStore(backend.location, prefix="{" + prefix + "}")
    from voxserve.jobs.sqlite import SQLiteJobStore

    return SQLiteJobStore(Path(backend.location))


__all__ = [
    "TERMINAL",
    "IdempotencyConflict",
    "Job",
    "JobNotFound",
    "JobStatus",
    "JobStore",
    "Progress",
    "new_job_id",
    "new_task_id",
    "open_store",
    "request_hash",
]
