"""Where log lines go and in what shape: plain text on a terminal, one JSON object per line
elsewhere (a container's output, a file, a log shipper), each with the request's id.

Lines go through a queue to a thread that writes them: a slow terminal or disk never holds up the
event loop, which logs a line per request. A synthesis's line carries its fields (client, key id,
engine, voice, characters, timings) as keys of its JSON object; the text line says the same in
``name=value`` form.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

#: The request being served (set by the API's request-id middleware): its id, and its ASGI scope.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
REQUEST_SCOPE: ContextVar[MutableMapping[str, Any] | None] = ContextVar("request_scope", default=None)


def route_template(scope: Mapping[str, Any]) -> str | None:
    """The path template of the route the router matched (``/v1/jobs/{job_id}``); None before
    routing, or for a path no route has."""
    return getattr(scope.get("route"), "path", None)


class RequestIdFilter(logging.Filter):
    """Puts the running request's id and route template on every record (``-`` outside a request;
    the route once the router has matched one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        scope = REQUEST_SCOPE.get()
        record.route = (route_template(scope) if scope is not None else None) or "-"
        return True


LogFormat = Literal["auto", "json", "text"]
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(request_id)s %(route)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(level: str, log_format: LogFormat = "auto") -> None:
    """``auto``: text when standard error is a terminal, JSON otherwise."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(json_formatter() if as_json else logging.Formatter(TEXT))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, writer)
    listener.start()
    atexit.register(listener.stop)
    handoff = logging.handlers.QueueHandler(lines)
    handoff.addFilter(RequestIdFilter())  # on the request's own task: the id is known there
    # it formats each record before queueing it: only the message, or every line is prefixed twice
    handoff.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handoff], force=True)
    # every call to an engine and every health check is an INFO line of the HTTP library's: the
    # pool says what matters (an instance ejected, and why, or back)
    logging.getLogger("httpx").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
