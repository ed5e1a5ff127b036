"""Optional traces (OpenTelemetry, over OTLP) and error reports (Sentry).

Both are extras: without them installed, or without ``otel``/``sentry_dsn`` set, every span here is
a no-op that costs a function call. FastAPI makes each HTTP request's span (``POST
/v1/audio/speech``, with its dependencies and endpoint); voxserve adds planning (``plan``), a
job's wait in the queue (``job.queue_wait``), a job (``job``) and each of its segments
(``job.segment``), each engine call (``engine.call``) and each piece of encoding (``encode``).

Spans that live across an async generator's ``yield`` are started and ended by hand (:func:`start`),
never made "current": a generator resumes in its consumer's context, where a current span set
before the yield could not be reset. Their parent is whatever span was current when they started.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, Protocol, TypeVar

from voxserve.config import Settings

log = logging.getLogger(__name__)

try:
    from opentelemetry import trace
except ImportError:  # the otel extra is not installed
    trace = None  # type: ignore[assignment]

Attribute = str | int | float | bool


class Span(Protocol):
    def set_attribute(self, key: str, value: Attribute) -> Any: ...

    def end(self, end_time: int | None = None) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Attribute) -> None:
        return None

    def end(self, end_time: int | None = None) -> None:
        return None


NO_SPAN = _NoSpan()


def start(name: str, start_time: float | None = None, **attributes: Attribute) -> Span:
    """A span that the caller ends (``span.end()``); ``start_time`` in seconds since the epoch."""
    if trace is None:
        return NO_SPAN
    nanoseconds = None if start_time is None else int(start_time * 1e9)
    span: Span = trace.get_tracer("voxserve").start_span(name, start_time=nanoseconds, attributes=attributes)
    return span


@contextlib.contextmanager
def current(name: str, **attributes: Attribute) -> Iterator[Span]:
    """A span that is the parent of every span started inside it (use in coroutines and threads)."""
    if trace is None:
        yield NO_SPAN
        return
    with trace.get_tracer("voxserve").start_as_current_span(name, attributes=attributes) as span:
        yield span


P = ParamSpec("P")
R = TypeVar("R")


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A function (not a coroutine) run inside a span of its own."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with current(name):
                return function(*args, **kwargs)

        return run

    return decorate


def configure_tracing(settings: Settings, exporter: Any = None) -> bool:
    """Send spans over OTLP (where ``OTEL_EXPORTER_OTLP_ENDPOINT`` says) when ``otel`` is on; False if
    it is off. ``exporter`` replaces OTLP (tests keep spans in memory)."""
    if not settings.otel and exporter is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise RuntimeError("otel = true needs the otel extra: pip install 'voxserve[otel]'") from None
    named = os.environ.get("OTEL_SERVICE_NAME")  # OpenTelemetry's own variable wins
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "voxserve"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def configure_sentry(settings: Settings) -> bool:
    """Report unhandled errors and error log lines to Sentry when ``sentry_dsn`` is set."""
    if settings.sentry_dsn is None:
        return False
    try:
        import sentry_sdk
    except ImportError:
        raise RuntimeError("sentry_dsn needs the sentry extra: pip install 'voxserve[sentry]'") from None
    # Sentry sends no personal data (addresses, headers) unless told to
    sentry_sdk.init(dsn=settings.sentry_dsn.get_secret_value(), traces_sample_rate=0)
    return True


def configure(settings: Settings) -> None:
    """Traces and error reports as the settings ask (``serve`` and ``worker`` alike)."""
    if configure_tracing(settings):
        log.info("tracing: spans go over OTLP")
    if configure_sentry(settings):
        log.info("errors are reported to Sentry")
