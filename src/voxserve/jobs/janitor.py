"""Retention: ended jobs and their files are removed after a while (48 hours by default)."""

from __future__ import annotations

import asyncio
import logging

from voxserve.jobs.files import JobFiles
from voxserve.jobs.models import now
from voxserve.jobs.store import JobStore

log = logging.getLogger(__name__)


async def sweep(store: JobStore, files: JobFiles, retention_seconds: float) -> list[str]:
    """Remove every job that ended more than ``retention_seconds`` ago, with its files."""
    removed = await store.remove_finished_before(now() - retention_seconds)
    for job_id in removed:
        await asyncio.to_thread(files.remove, job_id)
    if removed:
        log.info("janitor removed %d finished jobs", len(removed))
    return removed


async def run_janitor(store: JobStore, files: JobFiles, retention_seconds: float, interval: float) -> None:
    while True:
        try:
            await sweep(store, files, retention_seconds)
        except Exception:
            log.exception("janitor sweep failed; trying again later")
        await asyncio.sleep(interval)
