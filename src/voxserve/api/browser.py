"""What a web browser must not be able to do to voxserve, as ASGI middleware before any route.

- **DNS rebinding**: a page on an attacker's name that resolves to 127.0.0.1
  reaches a local install with its own ``Host``. Only the names in
  ``auth.allowed_hosts`` are answered (loopback names by default; ``*`` any,
  ``.example.com`` a domain and its subdomains): 400 ``invalid_host``. ``GET
  /healthz`` and ``/readyz`` are answered for any host: orchestrators' probes
  name the pod's address, and they tell the engines' state, no user's data.
- **Cross-site requests** (CSRF, and WebSocket hijacking): a page of another
  site can make the browser POST a form to ``/tts`` or open a WebSocket. A
  state-changing request (or a WebSocket) whose ``Origin`` is neither this
  service nor in ``auth.cors_origins`` is refused: 403 ``forbidden_origin``;
  so is one a browser marks ``Sec-Fetch-Site: cross-site`` without an Origin.
- **CORS**: origins in ``auth.cors_origins`` may call the API from their
  pages (Starlette's CORSMiddleware answers the preflights).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from voxserve.api.errors import error_response
from voxserve.config import AuthSettings
from voxserve.errors import ForeignOrigin, InvalidHost, VoxserveError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str:
    """``example.com:8000`` → ``example.com``; ``[::1]:8000`` → ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: list[str]) -> bool:
    name = host_name(host).lower().rstrip(".")
    for entry in allowed:
        pattern = entry.lower()
        if pattern == "*" or name == pattern or (pattern.startswith(".") and name.endswith(pattern)):
            return True
        if pattern.startswith(".") and name == pattern[1:]:
            return True
    return False


def origin_allowed(origin: str, host: str, allowed: list[str]) -> bool:
    """The page's origin is this service itself, or one allowed to call it."""
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


#: Answered whatever the Host: Kubernetes' probes and load balancers' health checks send an address.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
#: Set in a request's state when a probe path was answered for a host not in ``auth.allowed_hosts``.
UNLISTED_HOST = "unlisted_host"


class BrowserGuard:
    def __init__(self, app: ASGIApp, auth: AuthSettings) -> None:
        self.app = app
        self.auth = auth

    def _refusal(self, scope: Scope) -> VoxserveError | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if scope.get("path") in PROBE_PATHS and scope.get("method") == "GET":
            if not host_allowed(host, self.auth.allowed_hosts):  # a probe naming the pod's address
                scope.setdefault("state", {})[UNLISTED_HOST] = True  # is told statuses, not reasons
            return None
        if not host_allowed(host, self.auth.allowed_hosts):
            return InvalidHost(
                f"Host {host[:100]!r} is not served here; add it to auth.allowed_hosts", param="Host"
            )
        unsafe = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if not unsafe:
            return None
        origin = headers.get("origin")
        if origin is not None and origin != "null" and origin_allowed(origin, host, self.auth.cors_origins):
            return None
        if origin is None and headers.get("sec-fetch-site", "same-origin") != "cross-site":
            return None  # not a browser, or a same-site page
        return ForeignOrigin(
            f"a request from the page {(origin or 'of another site')[:100]!r} is not allowed; "
            "add its origin to auth.cors_origins",
            param="Origin",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send(
                {
                    "type": "websocket.close",
                    "code": 4000 + refusal.status_code,
                    "reason": refusal.message[:120],
                }
            )
        else:
            await error_response(refusal)(scope, receive, send)
