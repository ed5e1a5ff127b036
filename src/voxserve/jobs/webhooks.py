"""Job webhooks: a job's end (succeeded, failed, canceled) posted to the URL it (or its key) gave.

The body is ``{"type": "job.succeeded", "created": <unix>, "data": <the job's view>}``. It is
signed as Stripe and GitHub sign theirs: ``Voxserve-Signature: t=<unix>,v1=<hex>``, the hex
being HMAC-SHA256 of ``"<t>.<body>"`` under the key's webhook secret (``GET
/v1/webhooks/secret``), so a receiver checks the body came from here, unchanged, and recently
(:func:`verify` is what a receiver does). Each key's secret is made from one secret
(``webhooks.secret``, or one made once and kept in the artifact store), so every replica signs
alike and a key cannot work out another's.

A delivery is kept on the job (``Job.webhook``): pending, delivering, delivered or failed, with
its attempts and the last answer. A try that fails (no answer in ``timeout_seconds``, or not
2xx) is tried again after ``backoff_seconds``, doubled each time up to an hour, until
``attempts`` are used. The process that ends a job sends its webhook at once; every process
also looks, every ``sweep_seconds``, for deliveries left by one that stopped (a try claims the
delivery by a versioned write, so two processes never both send a try). The URL is checked
like a reference URL, when the job is submitted and again at each try (the name resolved once,
the connection made to the address checked): no loopback, private or link-local address
unless ``webhooks.private``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

from voxserve.config import WebhookSettings
from voxserve.errors import VoxserveError
from voxserve.jobs.models import TERMINAL, Job, JobStatus, now
from voxserve.jobs.store import JobStore
from voxserve.jobs.view import job_view
from voxserve.storage import ArtifactStore
from voxserve.voices.sources import Target, checked_target, post_to

log = logging.getLogger(__name__)

SECRET_KEY = "webhooks/secret"
SIGNATURE = "Voxserve-Signature"
MAX_BACKOFF = 3600.0
#: How old a signed timestamp a receiver should accept (what :func:`verify` allows by default).
TOLERANCE_SECONDS = 300
PARAM = "webhook_url"


def sign(secret: str, body: bytes, at: int) -> str:
    """The ``Voxserve-Signature`` header's value for ``body`` sent at ``at``."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: float = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: the header's signature is the body's under ``secret``, and recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        at = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, at).partition(",v1=")[2]
    return abs(time.time() - at) <= tolerance and hmac.compare_digest(expected, fields.get("v1", ""))


def new_delivery(url: str) -> dict[str, Any]:
    """A job's webhook before its end: nothing sent yet."""
    return {"url": url, "state": "waiting", "attempts": 0, "next_at": None, "last_status": None}


class WebhookSender:
    """Sends ended jobs' webhooks, retries them, and records each try on the job."""

    def __init__(self, store: JobStore, settings: WebhookSettings, artifacts: ArtifactStore) -> None:
        self.store = store
        self.settings = settings
        self.artifacts = artifacts
        self._master: str | None = settings.secret
        self._sending: dict[str, asyncio.Task[None]] = {}

    # -- secrets and URLs ----------------------------------------------------------------------

    def _master_secret(self) -> str:
        """The secret every key's is made from: configured, or made once and kept (blocking)."""
        if self._master is None:
            stored = self.artifacts.get_bytes(SECRET_KEY)
            if stored is None:
                self.artifacts.put_bytes(SECRET_KEY, secrets.token_hex(32).encode())
                stored = self.artifacts.get_bytes(SECRET_KEY)  # a replica that wrote first wins
            assert stored is not None
            self._master = stored.decode()
        return self._master

    async def secret_for(self, owner: str | None) -> str:
        """The secret ``owner``'s (a key's, or with no keys everyone's) webhooks are signed with."""
        master = self._master if self._master is not None else await asyncio.to_thread(self._master_secret)
        return "whsec_" + hmac.new(master.encode(), (owner or "").encode(), hashlib.sha256).hexdigest()

    def url_for(self, own: str | None, key_default: str | None) -> str | None:
        """Where a job's end goes: its own URL, else its key's default, else ``webhooks.default_url``."""
        return own or key_default or self.settings.default_url

    async def check_url(self, url: str) -> Target:
        """The URL if webhooks may go there (http(s), an allowed host, allowed addresses); a 4xx naming
        ``webhook_url`` if not."""
        settings = self.settings
        return await checked_target(url, settings.hosts, settings.private, PARAM, "webhooks.hosts")

    # -- sending -------------------------------------------------------------------------------

    def notify(self, job: Job) -> None:
        """A job this process ended: its webhook goes now (called by the store, on the event loop)."""
        if job.webhook is not None:
            self._start(job.id)

    def _start(self, job_id: str) -> None:
        if job_id not in self._sending:
            task = asyncio.create_task(self._deliver(job_id), name=f"webhook-{job_id}")
            self._sending[job_id] = task
            task.add_done_callback(lambda _: self._sending.pop(job_id, None))

    async def run(self) -> None:
        """Look for deliveries left by a process that stopped, for good (supervised)."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("webhook sweep failed; trying again later")
            await asyncio.sleep(self.settings.sweep_seconds)

    async def sweep(self) -> None:
        """Start every due delivery of the jobs that ended last (the newest 500 of each end)."""
        for status in TERMINAL:
            for job in await self.store.list_jobs(status=status, limit=500):
                if _due(job.webhook, now()):
                    self._start(job.id)

    async def close(self) -> None:
        for task in list(self._sending.values()):
            task.cancel()
        await asyncio.gather(*self._sending.values(), return_exceptions=True)

    async def _deliver(self, job_id: str) -> None:
        """Try until delivered, failed for good, or another process took the delivery."""
        while True:
            job = await self.store.update(job_id, self._claim)
            if job is None or job.webhook is None:
                return
            status, error = await self._try(job)
            done = await self.store.update(job_id, self._record(status, error))
            if done is None or done.webhook is None or done.webhook["state"] != "pending":
                return
            await asyncio.sleep(max(0.0, float(done.webhook["next_at"]) - now()))

    def _claim(self, job: Job) -> bool:
        """Take a due delivery for one try (its lease: a try's timeout and some)."""
        if job.webhook is None or not job.terminal or not _due(job.webhook, now()):
            return False
        delivery = dict(job.webhook)
        delivery["state"] = "delivering"
        delivery["attempts"] = int(delivery.get("attempts", 0)) + 1
        delivery["next_at"] = now() + self.settings.timeout_seconds + 30
        job.webhook = delivery
        return True

    def _record(self, status: int | None, error: str | None) -> Callable[[Job], bool]:
        """How a try went, on the job: delivered, pending again after the backoff, or failed."""

        def record(job: Job) -> bool:
            if job.webhook is None or job.webhook.get("state") != "delivering":
                return False
            delivery = dict(job.webhook)
            delivery["last_status"], delivery["last_error"] = status, error
            attempts = int(delivery["attempts"])
            if status is not None and 200 <= status < 300:
                delivery["state"], delivery["delivered_at"], delivery["next_at"] = "delivered", now(), None
            elif attempts >= self.settings.attempts:
                delivery["state"], delivery["next_at"] = "failed", None
            else:
                wait = min(self.settings.backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF)
                delivery["state"], delivery["next_at"] = "pending", now() + wait
            job.webhook = delivery
            return True

        return record

    async def _try(self, job: Job) -> tuple[int | None, str | None]:
        """One POST of the job's view: (the answer's status, or None; what went wrong, or None)."""
        assert job.webhook is not None
        event = {
            JobStatus.SUCCEEDED: "job.succeeded",
            JobStatus.FAILED: "job.failed",
            JobStatus.CANCELED: "job.canceled",
        }[job.status]
        body = json.dumps({"type": event, "created": int(now()), "data": job_view(job)}).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "voxserve-webhooks",
            "Voxserve-Event": event,
            "Voxserve-Delivery": f"{job.id}.{job.webhook['attempts']}",
            SIGNATURE: sign(await self.secret_for(job.owner), body, int(now())),
        }
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                target = await self.check_url(job.webhook["url"])
                status = await post_to(target, body, headers, self.settings.timeout_seconds)
        except TimeoutError:
            return None, f"no answer within {self.settings.timeout_seconds:g} s"
        except VoxserveError as exc:
            return None, exc.message
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
        log.info("webhook of job %s: HTTP %d (try %d)", job.id, status, job.webhook["attempts"])
        return status, None if 200 <= status < 300 else f"answered HTTP {status}"


def _due(delivery: dict[str, Any] | None, at: float) -> bool:
    """A delivery that should be tried now: never tried, waiting out its backoff, or claimed by a
    try whose process stopped (its lease ran out)."""
    if delivery is None:
        return False
    state = delivery.get("state")
    return state == "waiting" or (
        state in ("pending", "delivering") and float(delivery["next_at"] or 0) <= at
    )
