"""The job store: one base class holds the state logic, backends hold the data.

Public methods (``enqueue``, ``claim``, ``heartbeat``, ``record_progress``,
``finish``, ``retry``, ``cancel``, ``requeue_expired``...) decide what
changes; backends implement a handful of atomic primitives:

- ``_insert``: add a job unless its idempotency key exists (then return that job),
- ``_claim``: take the best due queued job and lease it, in one step,
- ``_replace``: write a job if its version is unchanged (optimistic concurrency),
- ``_list``, ``_delete``, ``_expired_leases``, ``_finished_before``, ``wait_for_work``.

Claims are leases: a worker that dies stops renewing its lease, and once it
expires ``requeue_expired`` puts the job back in the queue, where the next
worker resumes it from its last finished segment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from voxserve.changes import ChangeSignal
from voxserve.errors import Conflict, IdempotencyConflict, JobNotFound, VoxserveError
from voxserve.jobs.models import Job, JobStatus, Progress, now


def request_hash(fields: dict[str, Any]) -> str:
    """A stable fingerprint of what a job asks for, to compare idempotent retries."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


class JobStore(ABC):
    """Persistent jobs with leases. Subclasses: SQLite (embedded) and Redis (shared)."""

    #: What the backend raises when it is unreachable or busy: workers back off and go on.
    errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._changes = ChangeSignal()
        #: told of each job this process ends (succeeded, failed or canceled): its webhook is sent
        self.on_end: Callable[[Job], None] | None = None

    # -- backend primitives -----------------------------------------------------------------

    @abstractmethod
    async def _insert(self, job: Job, text: str) -> Job:
        """Store a new job and its text, or return the existing job with the same idempotency key."""

    @abstractmethod
    async def _idempotent(self, key: str) -> Job | None:
        """The job stored under an idempotency key, if any."""

    @abstractmethod
    async def text(self, job_id: str) -> str | None:
        """The job's input text (stored apart from the job, which changes often)."""

    @abstractmethod
    async def _claim(self, worker_id: str, lease_until: float, at: float) -> Job | None:
        """Atomically lease the due queued job with the highest priority, oldest first."""

    @abstractmethod
    async def _replace(self, job: Job, expected_version: int) -> bool:
        """Write ``job`` if the stored version is ``expected_version``; False if it moved on."""

    @abstractmethod
    async def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    async def _list(
        self, status: JobStatus | None, limit: int, before: str | None, owner: str | None
    ) -> list[Job]: ...

    @abstractmethod
    async def _expired_leases(self, at: float) -> list[str]: ...

    @abstractmethod
    async def _finished_before(self, at: float) -> list[str]: ...

    @abstractmethod
    async def _delete(self, job_id: str) -> None: ...

    @abstractmethod
    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state: ``queued`` (due), ``scheduled`` (waiting for their time or a
        retry), ``running``, ``ended`` (kept until retention removes them)."""

    @abstractmethod
    async def _wait_for_work(self, timeout: float) -> None:
        """Return when a job may have become available (or after ``timeout``)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise one of :attr:`errors` if the backend cannot be used right now (``/readyz``)."""

    # -- change notification (wakes watchers in this process at once) -----------------------

    def _notify(self) -> None:
        self._changes.notify()

    async def _wait_for_change(self, timeout: float) -> None:
        await self._changes.wait(timeout)

    # -- the public contract ----------------------------------------------------------------

    async def enqueue(self, job: Job, text: str) -> tuple[Job, bool]:
        """Store a job; (job, created). An idempotency key seen before returns its job.

        The same key with a different request is refused: a client's retry must
        never turn into a second, different job.
        """
        stored = await self._insert(job, text)
        created = stored.id == job.id
        if created:
            self._notify()
            return stored, True
        return self._replay(stored, job), False

    async def replay_of(self, job: Job) -> Job | None:
        """The job an earlier submission with ``job``'s idempotency key made, if there is one (409 if
        it asked for something else): a replay is answered before anything is charged."""
        found = await self._idempotent(job.idempotency_key) if job.idempotency_key else None
        return None if found is None else self._replay(found, job)

    @staticmethod
    def _replay(stored: Job, job: Job) -> Job:
        if stored.request_hash != job.request_hash:
            raise IdempotencyConflict(
                f"Idempotency-Key {job.idempotency_key!r} was already used for a different request "
                f"(job {stored.id})",
                param="Idempotency-Key",
            )
        return stored

    async def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        at = now()
        job = await self._claim(worker_id, at + lease_seconds, at)
        if job is not None:
            self._notify()
        return job

    async def wait_for_work(self, timeout: float) -> None:
        await self._wait_for_work(timeout)

    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        before: str | None = None,
        owner: str | None = None,
    ) -> list[Job]:
        """Newest first; ``before`` is the id of the last job of the previous page; ``owner`` keeps
        one key's jobs (None: everyone's)."""
        return await self._list(status, limit, before, owner)

    async def _modify(
        self, job_id: str, change: Callable[[Job], bool], known: Job | None = None
    ) -> Job | None:
        """Read, change and write back a job, retrying if another writer got there first.

        ``change`` returns False to leave the job as it is; the result is then
        None. ``known`` is the caller's latest copy: when nobody else wrote the
        job since, the change is one write with no read.
        """
        while True:
            job = known.copy() if known is not None else await self.get(job_id)
            known = None
            if job is None:
                return None
            ended = job.terminal
            if not change(job):
                return None
            expected = job.version
            job.version += 1
            job.updated_at = now()
            if await self._replace(job, expected):
                self._notify()
                if job.terminal and not ended and self.on_end is not None:
                    self.on_end(job)
                return job

    async def update(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Change a job however its state (``change`` returns False to leave it): a webhook's
        delivery is recorded on jobs that have ended."""
        return await self._modify(job_id, change)

    async def _as_owner(
        self, job_id: str, worker_id: str, change: Callable[[Job], None], known: Job | None = None
    ) -> Job | None:
        """Apply ``change`` only while ``worker_id`` holds the job's lease; None once it does not."""

        def owned_change(job: Job) -> bool:
            if job.status is not JobStatus.RUNNING or job.lease_owner != worker_id:
                return False
            change(job)
            return True

        return await self._modify(job_id, owned_change, known)

    async def heartbeat(
        self, job_id: str, worker_id: str, lease_seconds: float, known: Job | None = None
    ) -> Job | None:
        """Extend a lease; None if the worker no longer holds it (expired and taken over)."""

        def extend(job: Job) -> None:
            job.lease_expires = now() + lease_seconds

        return await self._as_owner(job_id, worker_id, extend, known)

    async def record_progress(
        self, job_id: str, worker_id: str, progress: Progress, known: Job | None = None
    ) -> Job | None:
        """Save progress after a finished segment; None if the lease was lost."""

        def advance(job: Job) -> None:
            job.progress = progress

        return await self._as_owner(job_id, worker_id, advance, known)

    async def finish(
        self,
        job_id: str,
        worker_id: str,
        status: JobStatus,
        error: VoxserveError | None = None,
        known: Job | None = None,
    ) -> Job | None:
        """End a running job: succeeded, failed (with the error) or canceled."""

        def end(job: Job) -> None:
            job.status = status
            job.finished_at = now()
            job.lease_owner = job.lease_expires = None
            if error is not None:
                job.error_code, job.error_message = error.code, error.message

        return await self._as_owner(job_id, worker_id, end, known)

    async def retry(self, job_id: str, worker_id: str, delay: float, error: VoxserveError) -> Job | None:
        """Put a failed attempt back in the queue after ``delay`` seconds, keeping its progress."""

        def again(job: Job) -> None:
            job.status = JobStatus.QUEUED
            job.run_at = now() + delay
            job.lease_owner = job.lease_expires = None
            job.error_code, job.error_message = error.code, error.message

        return await self._as_owner(job_id, worker_id, again)

    async def release(self, job_id: str, worker_id: str) -> Job | None:
        """Give a job back untouched (its worker is shutting down): this attempt does not count."""

        def give_back(job: Job) -> None:
            job.status, job.run_at = JobStatus.QUEUED, now()
            job.lease_owner = job.lease_expires = None
            job.attempts -= 1

        return await self._as_owner(job_id, worker_id, give_back)

    async def cancel(self, job_id: str) -> Job:
        """Cancel: a queued job at once, a running one at its next segment. Ended jobs stay as they are.

        A job whose every segment is made (``progress.finishing``) can no longer
        be stopped: 409, rather than a ``cancel_requested`` that would be ignored.
        The worker sets ``finishing`` through the same versioned write, so
        exactly one of the two wins.
        """

        def stop(job: Job) -> bool:
            if job.terminal or job.cancel_requested:
                return False
            if job.progress.finishing:
                raise Conflict(
                    f"job {job_id!r} has made all its audio and is finishing; it can no longer be canceled",
                    param="id",
                )
            if job.status is JobStatus.QUEUED:
                job.status = JobStatus.CANCELED
                job.finished_at = now()
            else:
                job.cancel_requested = True
            return True

        changed = await self._modify(job_id, stop)
        job = changed or await self.get(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id!r} does not exist", param="id")
        return job

    async def requeue_expired(self) -> list[Job]:
        """Jobs whose worker stopped renewing its lease: back to the queue, or failed when out of attempts."""
        requeued = []
        for job_id in await self._expired_leases(now()):

            def recover(job: Job) -> bool:
                if job.status is not JobStatus.RUNNING or (job.lease_expires or 0) > now():
                    return False
                job.lease_owner = job.lease_expires = None
                if job.cancel_requested:
                    job.status, job.finished_at = JobStatus.CANCELED, now()
                elif job.attempts >= job.max_attempts:
                    job.status, job.finished_at = JobStatus.FAILED, now()
                    job.error_code = "worker_lost"
                    job.error_message = (
                        f"the worker stopped during attempt {job.attempts} of {job.max_attempts}"
                    )
                else:
                    job.status, job.run_at = JobStatus.QUEUED, now()
                return True

            job = await self._modify(job_id, recover)
            if job is not None:
                requeued.append(job)
        return requeued

    async def remove_finished_before(self, at: float) -> list[str]:
        """Delete ended jobs older than ``at`` (the retention janitor); returns their ids."""
        ids = await self._finished_before(at)
        for job_id in ids:
            await self._delete(job_id)
        return ids

    async def watch(
        self, job_id: str, poll_interval: float = 0.5, min_interval: float = 0.25
    ) -> AsyncIterator[Job]:
        """Yield the job now and after every change, until it ends.

        Changes made in this process wake the watcher at once; changes made by
        other processes (a separate worker) are seen within ``poll_interval``.
        Changes closer together than ``min_interval`` are yielded as one (the
        latest), except the job's end: a fast engine finishes segments every
        few milliseconds, and fifty followers need not each hear of every one.
        """
        seen = -1
        loop = asyncio.get_running_loop()
        last = -min_interval
        while True:
            job = await self.get(job_id)
            if job is None:
                return
            if job.version != seen:
                seen = job.version
                last = loop.time()
                yield job
            if job.terminal:
                return
            await self._wait_for_change(poll_interval)
            pause = last + min_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
