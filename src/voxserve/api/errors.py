"""Translate every error into the one JSON shape: ``{"error": {"code", "message", "param"}}``."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from voxserve.errors import InvalidRequest, RateLimited, StoreUnavailable, VoxserveError

log = logging.getLogger(__name__)


def error_response(error: VoxserveError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON error, with the headers it calls for (Retry-After on every 503, Allow on a 405...)."""
    return JSONResponse(
        {"error": error.to_dict()},
        status_code=error.status_code,
        headers={**error.headers, **(headers or {})},
    )


def from_validation_errors(errors: Sequence[Any]) -> InvalidRequest:
    """The first pydantic error as an InvalidRequest naming its field."""
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "form")]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        error = InvalidRequest(f"request body is not valid JSON: {first.get('msg')}")
        error.code = "invalid_json"
        return error
    message = str(first.get("msg", "invalid value"))
    return InvalidRequest(f"{param}: {message}" if param else message, param=param)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API document gives this path (Starlette names only its first route's)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """One handler per family; the base class covers the whole voxserve tree."""

    async def voxserve_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VoxserveError)
        if isinstance(exc, RateLimited):
            request.app.state.services.metrics.rate_limit_refusals.labels(exc.param or "").inc()
        return error_response(exc)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return error_response(from_validation_errors(exc.errors()))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        error = VoxserveError(str(exc.detail))
        error.status_code = exc.status_code
        codes = {404: "not_found", 405: "method_not_allowed", 413: "input_too_large"}
        error.code = codes.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(error, headers)

    async def store_error(_: Request, exc: Exception) -> JSONResponse:
        log.warning("job store failed: %s: %s", type(exc).__name__, exc)
        return error_response(StoreUnavailable("the job store does not answer; retry shortly"))

    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(VoxserveError("internal error; see the server log"))

    app.add_exception_handler(VoxserveError, voxserve_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for store_failure in (sqlite3.Error, RedisError):
        app.add_exception_handler(store_failure, store_error)
    app.add_exception_handler(Exception, unexpected_error)
