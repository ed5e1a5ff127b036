"""Job submission: a request checked in full, then stored; nothing unchecked is ever queued.

The HTTP routes (``/v1/jobs``, the task API) and any other front end submit
through :class:`JobSubmitter`, so a job is refused for the same reasons and
with the same errors wherever it comes from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from voxserve.config import JobSettings
from voxserve.errors import InsufficientStorage, InvalidRequest
from voxserve.jobs.files import JobFiles, check_name
from voxserve.jobs.models import Job
from voxserve.jobs.store import JobStore, request_hash
from voxserve.jobs.webhooks import WebhookSender, new_delivery
from voxserve.pipeline import Pipeline, Plan, SpeechRequest
from voxserve.request import MAX_SPEAKERS, Role
from voxserve.voices import Viewer

METADATA_LIMIT = 4096


def pinned(request: SpeechRequest, plan: Plan) -> SpeechRequest:
    """The request with each library voice it uses named by id, and its lexicons listed by id (its
    key's defaults too): the worker finds exactly those, whoever else names one so (a speaker's
    voice in the ``voices`` table, an SSML voice's added)."""
    voices = dict(request.voices or {})
    update: dict[str, Any] = {"lexicons": [lexicon_id for lexicon_id, _, _ in plan.lexicons]}
    for reader in plan.readers:
        library_id = reader.voice.library_id
        if library_id is None:
            continue
        if reader.speaker is None:
            update["voice"] = library_id
            continue
        role = request.role(reader.speaker)
        speaker = reader.speaker.casefold()
        named = next((name for name in voices if name.casefold() == speaker), reader.speaker)
        voices[named] = role.model_copy(update={"voice": library_id}) if role else Role(voice=library_id)
    if len(voices) > MAX_SPEAKERS:
        raise InvalidRequest(
            f"voices: with the library voices its SSML names, the table would have {len(voices)} "
            f"speakers; the most is {MAX_SPEAKERS}",
            param="voices",
        )
    if request.voices is not None or voices:
        update["voices"] = voices
    return request.model_copy(update=update)


class JobSubmitter:
    """Plans a job (every check, no engine time), then enqueues it with its text."""

    def __init__(
        self,
        store: JobStore,
        files: JobFiles,
        pipeline: Pipeline,
        settings: JobSettings,
        webhooks: WebhookSender,
    ) -> None:
        self.store = store
        self.files = files
        self.pipeline = pipeline
        self.settings = settings
        self.webhooks = webhooks

    async def submit(
        self,
        request: SpeechRequest,
        *,
        job_id: str,
        name: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        charge: Callable[[Plan], Awaitable[Callable[[], None]]] | None = None,
        owner: str | None = None,
        sees_all: bool = True,
        webhook_url: str | None = None,
        default_webhook_url: str | None = None,
    ) -> tuple[Job, bool]:
        """(job, created): created is false when the idempotency key names an equal job.

        ``charge`` is called once every check has passed, before the job is stored: a quota it
        refuses leaves nothing queued. It returns the charge's refund, called when the job is not
        stored after all (the store failed, or a replay with the same idempotency key got there
        first); a replay found before charging is not charged at all. ``owner`` (the key) owns the
        job, and its idempotency keys are its own: another key's same key names another job; it uses
        its own library voices, or anyone's when it ``sees_all``. ``webhook_url``: where its end
        is posted; else ``default_webhook_url`` (its key's), else ``webhooks.default_url``; checked here.
        """
        # A book takes seconds to segment: off the event loop, so other requests keep flowing.
        profile = replace(self.pipeline.planner.job, require_ready=False)  # queued while engines load
        plan = await asyncio.to_thread(self.pipeline.plan, request, profile, Viewer(owner, everyone=sees_all))
        request = pinned(request, plan)
        parameters = request.dump()
        fields: dict[str, Any] = {
            "request": parameters,
            "input": request.input,
            "name": name,
            "priority": priority,
        }
        fields |= {"metadata": metadata, "run_at": run_at, "webhook_url": webhook_url}
        digest = await asyncio.to_thread(request_hash, fields)  # hashes the whole text
        name = check_name(name) if name else job_id
        metadata = metadata or {}
        if len(repr(metadata)) > METADATA_LIMIT:
            raise InvalidRequest(f"metadata is over the limit of {METADATA_LIMIT} bytes", param="metadata")
        webhook_url = self.webhooks.url_for(webhook_url, default_webhook_url)
        if webhook_url:
            await self.webhooks.check_url(webhook_url)
        usage, limit = await asyncio.to_thread(self.files.usage), self.settings.disk_limit_bytes
        if usage >= limit:
            raise InsufficientStorage(
                f"job storage holds {usage} bytes, at its limit of {limit}; "
                "retry after finished jobs expire or are deleted"
            )
        job = Job(
            id=job_id,
            request=parameters,
            name=name,
            priority=priority,
            metadata=metadata,
            max_attempts=max_attempts or self.settings.max_attempts,
            owner=owner,
            idempotency_key=f"{owner}:{idempotency_key}" if owner and idempotency_key else idempotency_key,
            request_hash=digest,
            decided=plan.decisions() if self.pipeline.settled(plan) else {},
            webhook=new_delivery(webhook_url) if webhook_url else None,
        )
        if run_at is not None:
            job.run_at = run_at.timestamp()
        replayed = await self.store.replay_of(job)
        if replayed is not None:
            return replayed, False
        refund = await charge(plan) if charge is not None else None
        try:
            stored, created = await self.store.enqueue(job, request.input)
        except Exception:
            if refund is not None:
                refund()
            raise
        if not created and refund is not None:
            refund()
        return stored, created
