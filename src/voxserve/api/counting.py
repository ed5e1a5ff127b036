"""Requests counted by their answer's status: in the metrics by route, and per key in its usage
(``requests.200``, ``requests.429``...).

ASGI middleware: it sees the status as the answer starts, the route the
router matched and the principal the route's dependencies found (both kept
on the request's scope), and counts once the answer is sent. Requests
refused before a key was read (no key, a bad host) belong to no key and
count only in the metrics. The route is the path template
(``/v1/jobs/{job_id}``), so label values stay few whatever clients send;
a path no route matched counts as ``unmatched``.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxserve.logs import route_template
from voxserve.metrics import Metrics
from voxserve.security.guard import Guard, Principal


class RequestCounter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            template = route_template(scope) or "unmatched"
            metrics: Metrics = scope["app"].state.services.metrics
            labels = (template, scope["method"])
            metrics.http_requests.labels(*labels, str(status)).inc()
            metrics.http_duration.labels(*labels).observe(time.perf_counter() - started)
            principal = scope.get("state", {}).get("principal")
            if isinstance(principal, Principal) and principal.key is not None:
                guard: Guard = scope["app"].state.services.guard
                await guard.record(principal, {f"requests.{status}": 1})
