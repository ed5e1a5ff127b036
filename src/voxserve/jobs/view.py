"""A job as clients see it: the API's answers, its events and the body of its webhook."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from voxserve.jobs.models import Job


def _time(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()


def job_view(job: Job) -> dict[str, Any]:
    """A job as clients see it (no lease internals), on the API and in its webhook."""
    progress = job.progress
    return {
        "id": job.id,
        "object": "job",
        "status": job.status.value,
        "name": job.name,
        "priority": job.priority,
        "created_at": _time(job.created_at),
        "run_at": _time(job.run_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "progress": {
            "segments_done": progress.segments_done,
            "segments_total": progress.segments_total or None,  # null until the text is planned
            "audio_seconds": round(progress.audio_seconds, 3),
            "chars_done": progress.chars_done,
            "chars_total": progress.chars_total or None,
        },
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "metadata": job.metadata,
        "voice": job.request.get("voice"),
        "voices": job.request.get("voices"),
        "lexicons": job.request.get("lexicons"),
        "webhook": _webhook(job.webhook),
        "model": job.request.get("model"),
        "response_format": job.request.get("response_format"),
        "speed": job.request.get("speed"),
        "language": job.request.get("language"),
        "owner": job.owner,
        "links": {
            "self": f"/v1/jobs/{job.id}",
            "audio": f"/v1/jobs/{job.id}/audio",
            "captions": f"/v1/jobs/{job.id}/captions",
            "events": f"/v1/jobs/{job.id}/events",
            "ws": f"/v1/jobs/{job.id}/ws",
        },
    }


def _without_password(url: str) -> str:
    """A URL as shown: a password in it (sent as Basic auth) is not shown back."""
    parsed = urlsplit(url)
    if parsed.password is None:
        return url
    host = parsed.netloc.rpartition("@")[2]
    return urlunsplit(parsed._replace(netloc=f"{parsed.username}:***@{host}"))


def _webhook(delivery: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the job's end is posted and how that went (no internals: the next try's time only)."""
    if delivery is None:
        return None
    shown = {key: delivery.get(key) for key in ("url", "state", "attempts", "last_status", "last_error")}
    shown["url"] = _without_password(str(delivery.get("url")))
    shown["delivered_at"] = _time(delivery.get("delivered_at"))
    shown["next_attempt_at"] = _time(delivery.get("next_at")) if delivery.get("state") == "pending" else None
    return shown
