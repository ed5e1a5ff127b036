"""The embedded job store: one SQLite file in WAL mode, in the data dir.

Each job is one row: indexed columns for what queries select on, and the job
itself as JSON. A claim is a single ``UPDATE … WHERE rowid = (SELECT …)
RETURNING``, so two workers (even in two processes) can never take the same
job. All statements run on one dedicated thread that owns the connection
(:class:`~voxserve.sqlitedb.SQLiteThread`): one thread hop per store
operation, never on the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from voxserve.jobs.models import Job, JobStatus, now
from voxserve.jobs.store import JobStore
from voxserve.sqlitedb import SQLiteThread

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_at REAL NOT NULL,
    lease_expires REAL,
    finished_at REAL,
    version INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    data TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (status, priority DESC, seq) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_expires) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
"""

_CLAIM = """
UPDATE jobs SET status = 'running', lease_expires = :lease, version = version + 1,
    data = json_set(data,
        '$.status', 'running',
        '$.lease_owner', :worker,
        '$.lease_expires', :lease,
        '$.attempts', json_extract(data, '$.attempts') + 1,
        '$.started_at', coalesce(json_extract(data, '$.started_at'), :now),
        '$.updated_at', :now,
        '$.version', version + 1)
WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' AND run_at <= :now
             ORDER BY priority DESC, seq LIMIT 1)
RETURNING data
"""

_COLUMNS = "id, status, priority, run_at, lease_expires, finished_at, version, idempotency_key, data, text"


def _state(job: Job) -> tuple[Any, ...]:
    """The columns a job's changes move (status through version), in ``_COLUMNS``' order."""
    return (job.status.value, job.priority, job.run_at, job.lease_expires, job.finished_at, job.version)


def _row(job: Job) -> tuple[Any, ...]:
    return (job.id, *_state(job), job.idempotency_key, json.dumps(job.to_dict()))


class SQLiteJobStore(JobStore):
    """Jobs in ``path`` (created on first use)."""

    errors = (sqlite3.Error,)

    def __init__(self, path: Path, poll_interval: float = 0.5) -> None:
        super().__init__()
        self.path = path
        self.poll_interval = poll_interval
        self._sql = SQLiteThread(path, SCHEMA, "voxserve-sqlite")
        self._run = self._sql.run

    async def _insert(self, job: Job, text: str) -> Job:
        def insert(db: sqlite3.Connection) -> str:
            db.execute(
                f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (*_row(job), text),
            )
            if job.idempotency_key is None:
                return json.dumps(job.to_dict())
            found = db.execute("SELECT data FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,))
            return str(found.fetchone()[0])

        return Job.from_dict(json.loads(await self._run(insert)))

    async def _idempotent(self, key: str) -> Job | None:
        data = await self._sql.text("SELECT data FROM jobs WHERE idempotency_key = ?", (key,))
        return None if data is None else Job.from_dict(json.loads(data))

    async def _claim(self, worker_id: str, lease_until: float, at: float) -> Job | None:
        data = await self._sql.text(_CLAIM, {"lease": lease_until, "worker": worker_id, "now": at})
        return None if data is None else Job.from_dict(json.loads(data))

    async def _replace(self, job: Job, expected_version: int) -> bool:
        def replace(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET status = ?, priority = ?, run_at = ?, lease_expires = ?, finished_at = ?, "
                "version = ?, data = ? WHERE id = ? AND version = ?",
                (*_state(job), json.dumps(job.to_dict()), job.id, expected_version),
            )
            return cursor.rowcount == 1

        return await self._run(replace)

    async def ping(self) -> None:
        await self._run(lambda connection: connection.execute("SELECT 1").fetchone())

    async def get(self, job_id: str) -> Job | None:
        data = await self._sql.text("SELECT data FROM jobs WHERE id = ?", (job_id,))
        return None if data is None else Job.from_dict(json.loads(data))

    async def text(self, job_id: str) -> str | None:
        return await self._sql.text("SELECT text FROM jobs WHERE id = ?", (job_id,))

    async def _list(
        self, status: JobStatus | None, limit: int, before: str | None, owner: str | None
    ) -> list[Job]:
        def select(db: sqlite3.Connection) -> list[str]:
            clauses, params = [], []
            if status is not None:
                clauses.append("status = ?")
                params.append(status.value)
            if owner is not None:
                clauses.append("json_extract(data, '$.owner') = ?")
                params.append(owner)
            if before is not None:
                clauses.append("seq < (SELECT seq FROM jobs WHERE id = ?)")
                params.append(before)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = db.execute(f"SELECT data FROM jobs {where} ORDER BY seq DESC LIMIT ?", (*params, limit))
            return [str(row[0]) for row in rows]

        return [Job.from_dict(json.loads(data)) for data in await self._run(select)]

    async def _expired_leases(self, at: float) -> list[str]:
        def expired(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT id FROM jobs WHERE status = 'running' AND lease_expires < ?", (at,))
            return [str(row[0]) for row in rows]

        return await self._run(expired)

    async def _finished_before(self, at: float) -> list[str]:
        def finished(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (at,))
            return [str(row[0]) for row in rows]

        return await self._run(finished)

    async def _delete(self, job_id: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)))

    async def counts(self) -> dict[str, int]:
        def count(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute(
                "SELECT CASE WHEN status = 'queued' AND run_at > ? THEN 'scheduled' "
                "WHEN status IN ('queued', 'running') THEN status ELSE 'ended' END AS state, COUNT(*) "
                "FROM jobs GROUP BY state",
                (now(),),
            )
            return {"queued": 0, "scheduled": 0, "running": 0, "ended": 0} | {str(s): int(n) for s, n in rows}

        return await self._run(count)

    async def _wait_for_work(self, timeout: float) -> None:
        # Enqueues in this process wake us at once; other processes' within the poll interval.
        await self._wait_for_change(min(timeout, self.poll_interval))

    async def close(self) -> None:
        await self._sql.close()
