"""Route dependencies for keys and limits: who asks, whether the route is theirs, what it costs.

- :func:`user` (scope): the request's principal, its key holding ``scope``;
- :func:`metered` (scope): the same, charged one request against its limits
  (routes that synthesize charge themselves, with their characters, once the
  request is known to be good);
- :func:`public_unless` (flag, scope): no key needed when ``auth.<flag>`` is
  set (docs, metrics, the engines page), else :func:`metered`.

What a synthesis costs (its characters, moderation, refunds) is
:mod:`voxserve.api.admission`'s.

The principal is found once per request and kept on its state, where the
usage middleware reads it to count the answer's status. :class:`AuthenticateFirst`
finds it before a request's body is read: a caller without a key gets 401,
never a validation error about a body it had no right to send, and an upload
from nobody is not received at all.
"""

# No ``from __future__ import annotations``: the dependencies made inside functions name local
# callables in their annotations, which FastAPI must evaluate where they are defined.

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Response
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from voxserve.api.browser import SAFE_METHODS
from voxserve.api.dependencies import get_services
from voxserve.api.errors import error_response
from voxserve.errors import StoreUnavailable, VoxserveError
from voxserve.security.guard import Principal
from voxserve.services import Services


async def principal_of(
    connection: HTTPConnection, services: Annotated[Services, Depends(get_services)]
) -> Principal:
    found: Principal | None = getattr(connection.state, "principal", None)
    if found is None:
        peer = connection.client.host if connection.client else None
        found = await services.guard.authenticate(peer, connection.headers)
        connection.state.principal = found
    return found


class AuthenticateFirst:
    """ASGI middleware: with keys on, a request that may carry a body (every method but GET, HEAD
    and OPTIONS) is authenticated before the route reads it; every such route needs a key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            guard = scope["app"].state.services.guard
            if guard.auth:
                client = scope.get("client")
                try:
                    principal = await guard.authenticate(client[0] if client else None, Headers(scope=scope))
                except VoxserveError as exc:
                    await error_response(exc)(scope, receive, send)
                    return
                except guard.keys.errors:
                    error = StoreUnavailable("the key store does not answer; retry shortly")
                    await error_response(error)(scope, receive, send)
                    return
                scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def user(scope: str | None = None) -> Callable[..., Awaitable[Principal]]:
    """The principal, whose key must hold ``scope`` (any valid key for None)."""

    async def dependency(principal: Annotated[Principal, Depends(principal_of)]) -> Principal:
        if scope is not None:
            principal.require(scope)
        return principal

    return dependency


async def _charge(principal: Principal, services: Services, response: Response) -> None:
    admitted = await services.guard.admit(principal)
    response.headers.update(admitted.headers)


def metered(scope: str | None = None) -> Callable[..., Awaitable[Principal]]:
    """The principal, charged one request (429 when a limit is reached); the limit's headers set."""
    holder = user(scope)

    async def dependency(
        principal: Annotated[Principal, Depends(holder)],
        services: Annotated[Services, Depends(get_services)],
        response: Response,
    ) -> Principal:
        await _charge(principal, services, response)
        return principal

    return dependency


def public_unless(flag: str, scope: str | None = None) -> Callable[..., Awaitable[None]]:
    """Open to anyone when ``auth.<flag>`` is set (or auth is off), else a metered key with ``scope``."""

    async def dependency(
        connection: HTTPConnection, services: Annotated[Services, Depends(get_services)], response: Response
    ) -> None:
        auth = services.settings.auth
        if auth.enabled and not getattr(auth, flag):
            principal = await principal_of(connection, services)
            if scope is not None:
                principal.require(scope)
            await _charge(principal, services, response)

    return dependency
