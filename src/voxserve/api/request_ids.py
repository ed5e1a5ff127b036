"""One id per request, from the client's ``X-Request-ID`` when it gives a usable one, else made here.

Every answer carries it back in ``X-Request-ID``, and every log line written while the request runs
names it (``request_id`` on the record), so a client's report, the gateway's log and voxserve's
log meet on one value. A client's id is used only when it is short and plain (letters, digits and
``._:-``): anything else could forge or break log lines, and gets an id of ours instead.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxserve.logs import REQUEST_ID, REQUEST_SCOPE

HEADER = b"x-request-id"
USABLE = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def current_request_id() -> str:
    """The id of the request being served (a new one outside any request)."""
    found = REQUEST_ID.get()
    return found if found != "-" else uuid.uuid4().hex[:16]


class RequestIds:
    """ASGI middleware: the request's id set for its whole run, and returned on its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"")
        request_id = given.decode() if USABLE.fullmatch(given) else uuid.uuid4().hex[:16]
        token = REQUEST_ID.set(request_id)
        scope_token = REQUEST_SCOPE.set(scope)

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message["headers"] = [*headers, (HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, answering)
        finally:
            REQUEST_ID.reset(token)
            REQUEST_SCOPE.reset(scope_token)
