"""The FastAPI application: services built in the lifespan, one router per resource."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from voxserve import __version__
from voxserve.api import admin, catalog, health, jobs, lexicons, speech, speech_socket, tasks, tts, voices
from voxserve.api import engines as engines_api
from voxserve.api.auth import AuthenticateFirst
from voxserve.api.body_limit import BodyLimit
from voxserve.api.browser import BrowserGuard
from voxserve.api.counting import RequestCounter
from voxserve.api.docs import install_docs
from voxserve.api.errors import install_error_handlers
from voxserve.api.request_ids import RequestIds
from voxserve.api.schemas import ERRORS, hoist_definitions
from voxserve.api.web import install_web
from voxserve.api.wyoming import WyomingServer
from voxserve.config import Settings
from voxserve.engines import Engine
from voxserve.services import Services

BODY_SLACK = (
    4 * 1024 * 1024
)  # the other fields, and an upload a little over its own limit (named by that check)


def create_app(settings: Settings, engines: Mapping[str, Engine] | None = None) -> FastAPI:
    """Build the app. ``engines`` replaces the configured ones (tests pass fakes).

    Engines load in the background after start, so ``/healthz`` answers at once
    and ``/readyz`` turns 200 when they are warm.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings, engines)
        app.state.services = services
        services.start(settings.jobs.workers)
        wyoming = WyomingServer(services, settings.wyoming) if settings.wyoming.uri else None
        if wyoming is not None:
            await wyoming.start()
            services.supervise(wyoming.serve(), "wyoming")
        # Building the document prepares every route, which FastAPI would otherwise do on the
        # first request of each router: a few hundred milliseconds of the event loop then.
        await asyncio.to_thread(app.openapi)
        try:
            yield
        finally:
            if wyoming is not None:
                await wyoming.close()
            await services.close()

    app = FastAPI(
        title="voxserve",
        version=__version__,
        summary="Self-hosted speech synthesis with an OpenAI-compatible API.",
        lifespan=lifespan,
        responses=ERRORS,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # outermost last: the browser checks, CORS, the body limit, the request counter, authentication
    app.add_middleware(AuthenticateFirst)  # a key is checked before any body is read
    app.add_middleware(RequestCounter)  # outside it: refusals without a key are counted too
    app.add_middleware(BodyLimit, limit=max_body_bytes(settings))
    auth = settings.auth
    if auth.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=auth.cors_origins,
            allow_methods=auth.cors_methods,
            allow_headers=auth.cors_headers,
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(BrowserGuard, auth=auth)
    app.add_middleware(RequestIds)  # outermost: every answer, refusals included, carries the id
    install_error_handlers(app)
    for module in (
        speech,
        speech_socket,
        tts,
        jobs,
        tasks,
        voices,
        lexicons,
        catalog,
        engines_api,
        admin,
        health,
    ):
        app.include_router(module.router)
    install_docs(app)
    install_web(app)
    _complete_schema(app)
    return app


#: What a page of an allowed origin may read of an answer.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-Voxserve-Engine",
    "X-Voxserve-Voice",
    "X-Voxserve-Lexicons",
    "X-Voxserve-Ignored",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Content-Disposition",
    "Location",
]


def max_body_bytes(settings: Settings) -> int:
    """The largest request body read: a job's text as JSON (6 bytes a character at worst, escaped)
    or a reference upload, with room for the other fields. Larger is 413 before it is read."""
    return max(6 * settings.jobs.max_chars, settings.references.max_bytes) + BODY_SLACK


def _complete_schema(app: FastAPI) -> None:
    """The OpenAPI document with every request body's definitions resolvable."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = hoist_definitions(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
