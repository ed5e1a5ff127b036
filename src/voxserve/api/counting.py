"""Requests counted per key by their answer's status (``requests.200``, ``requests.429``...).

ASGI middleware: it sees the status as the answer starts and the principal
the route's dependencies found (kept on the request's state), and counts
once the answer is sent. Requests refused before a key was read (no key, a
bad host) belong to no key and are not counted.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxserve.security import Guard, Principal


class RequestCounter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            principal = scope.get("state", {}).get("principal")
            if isinstance(principal, Principal) and principal.key is not None:
                guard: Guard = scope["app"].state.services.guard
                await guard.record(principal, {f"requests.{status}": 1})
