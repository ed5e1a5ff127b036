"""What a job is, and the states it moves through.

A job is a synthesis request whose audio goes to storage instead of a
socket. Its state machine, written down as data::

    queued ──claim──► running ──► succeeded
      ▲  │               │   └──► failed      (permanent error, or attempts used up)
      │  └──cancel──► canceled ◄──cancel (at the next segment)
      └──── retry / lease expired (resumes from the last finished segment)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


def now() -> float:
    return time.time()


def new_job_id() -> str:
    """``job_`` + milliseconds + random: sortable by creation, unguessable."""
    return f"job_{int(now() * 1000)}_{secrets.token_hex(5)}"


def new_task_id() -> str:
    """The seed clients' id shape: ``task_<ms timestamp>_<random>``."""
    return f"task_{int(now() * 1000)}_{secrets.token_hex(5)}"


@dataclass
class Progress:
    """How far a job got; ``bytes_done`` is where the PCM file ends after the last finished segment."""

    segments_done: int = 0
    segments_total: int = 0
    chars_done: int = 0
    chars_total: int = 0
    audio_seconds: float = 0.0
    bytes_done: int = 0
    finishing: bool = False  # every segment is made; the file is being closed, too late to cancel


@dataclass
class Job:
    """One job as stored, rewritten at every change.

    ``request`` holds the speech request's parameters; its text is stored
    apart (``JobStore.text``), written once, so that saving progress after
    each segment costs the same for a sentence as for a whole book.
    """

    id: str
    request: dict[str, Any]
    name: str
    priority: int = 0
    status: JobStatus = JobStatus.QUEUED
    created_at: float = field(default_factory=now)
    run_at: float = field(default_factory=now)
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = field(default_factory=now)
    attempts: int = 0
    max_attempts: int = 3
    progress: Progress = field(default_factory=Progress)
    error_code: str | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None  # the API key that made it (None without keys): only it (and admin) sees it
    idempotency_key: str | None = None
    request_hash: str | None = None
    lease_owner: str | None = None
    lease_expires: float | None = None
    cancel_requested: bool = False
    #: what its plan decided when it was submitted (Plan.decisions: engine, rates, segments, and the
    #: voice when its engine was ready); the worker's own plan must agree, or the job fails saying why
    decided: dict[str, Any] = field(default_factory=dict)
    #: where its end is posted, and how that went (:class:`voxserve.jobs.webhooks.Delivery` as a dict)
    webhook: dict[str, Any] | None = None
    version: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a shallow copy: ``dataclasses.asdict`` deep-copies and is slow)."""
        data = {name: getattr(self, name) for name in _JOB_FIELDS}
        data["status"] = self.status.value
        data["progress"] = dict(self.progress.__dict__)
        return data

    def copy(self) -> Job:
        return replace(self, progress=replace(self.progress))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        values = {name: value for name, value in data.items() if name in _JOB_FIELD_NAMES}
        values["status"] = JobStatus(values["status"])
        values["progress"] = Progress(**values["progress"])
        return cls(**values)


_JOB_FIELDS = tuple(f.name for f in fields(Job))
_JOB_FIELD_NAMES = frozenset(_JOB_FIELDS)
