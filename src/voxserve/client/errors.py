"""What a failed call raises: the server's own error (code, message, param), or that it was not reached."""

from __future__ import annotations

import email.utils
import socket
import time

import httpx

#: Answers worth asking again after a while: rate limits, an engine busy or down, a gateway hiccup.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class VoxserveClientError(Exception):
    """Base of the SDK's errors."""


def unreachable(exc: BaseException) -> str:
    """What a failed connection means, in words an operator acts on (the system's own after them).

    The HTTP library says "All connection attempts failed"; the cause it wraps says which.
    """
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    said = str(causes[-1]) or type(causes[-1]).__name__
    if any(isinstance(cause, httpx.TimeoutException | TimeoutError) for cause in causes):
        return f"no answer in time ({type(exc).__name__})"
    if any(isinstance(cause, socket.gaierror) for cause in causes) or "Name or service not known" in said:
        return f"its host name does not resolve (DNS): {said}"
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes) or "refused" in said.lower():
        return f"connection refused (is the server running, and on that port?): {said}"
    return f"{type(exc).__name__}: {said}"


class ConnectionFailed(VoxserveClientError):
    """The server could not be reached (or the connection broke before an answer).

    ``connected``: a connection was made (it broke, or no answer came in time); False when none
    could be (refused, a name that does not resolve, no answer to the connect).
    """

    def __init__(self, message: str, *, connected: bool = False) -> None:
        super().__init__(message)
        self.connected = connected

    @classmethod
    def of(cls, what: str, exc: httpx.TransportError) -> ConnectionFailed:
        """The failure of ``what`` (a call) in words an operator acts on."""
        refused = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return cls(f"{what}: {unreachable(exc)}", connected=not refused)


class APIError(VoxserveClientError):
    """An error answer: its HTTP status and the ``{"error": {code, message, param}}`` body.

    A server that is not voxserve (an OpenAI-compatible one, a proxy) may answer in another shape:
    its text becomes the message and the code is ``http_<status>``.
    """

    def __init__(
        self, status: int, code: str, message: str, param: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (param: {param})" if param else ""))
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIError:
        """The error an answer carries; its body must have been read."""
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        try:
            error = response.json()["error"]
            if isinstance(error, dict):
                return cls(
                    response.status_code,
                    str(error.get("code") or f"http_{response.status_code}"),
                    str(error.get("message") or ""),
                    error.get("param"),
                    retry_after,
                )
            return cls(response.status_code, f"http_{response.status_code}", str(error), None, retry_after)
        except (ValueError, KeyError, TypeError):
            text = response.text[:500] or response.reason_phrase
            return cls(response.status_code, f"http_{response.status_code}", text, None, retry_after)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
