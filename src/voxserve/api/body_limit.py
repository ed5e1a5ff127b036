"""The largest request body voxserve reads, refused in the API's JSON error shape.

Starlette's own body limit answers in plain text; this one answers like every
other error. A declared ``Content-Length`` over the limit is refused before a
byte is read; a chunked body is counted as it arrives and refused when it
passes the limit, so a client cannot make the server hold more than that.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxserve.api.errors import error_response
from voxserve.errors import PayloadTooLarge


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over the limit of {limit} bytes ({limit / 2**20:g} MiB)")


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await error_response(_too_large(self.limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, counted, send)
