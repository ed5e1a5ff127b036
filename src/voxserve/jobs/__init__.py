"""Jobs: durable synthesis requests whose audio goes to storage instead of a socket."""

from __future__ import annotations

from pathlib import Path

from voxserve.errors import IdempotencyConflict, JobNotFound
from voxserve.jobs.models import TERMINAL, Job, JobStatus, Progress, new_job_id, new_task_id
from voxserve.jobs.store import JobStore, request_hash


def open_store(url: str | None, data_dir: Path, prefix: str = "voxserve") -> JobStore:
    """The store a queue URL names: ``redis://…`` for Redis, else SQLite in the data dir.

    ``sqlite:///path/jobs.db`` names another SQLite file. Backends are imported
    only when chosen.
    """
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        from voxserve.jobs.redis import RedisJobStore

        return RedisJobStore(url, prefix="{" + prefix + "}")
    from voxserve.jobs.sqlite import SQLiteJobStore

    if url and url.startswith("sqlite:///"):
        return SQLiteJobStore(Path(url.removeprefix("sqlite:///")))
    return SQLiteJobStore(data_dir / "jobs.db")


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
