"""The one exception tree of voxserve.

Every error that can reach a client derives from :class:`VoxserveError`, which
carries the HTTP status, a stable machine-readable ``code`` and the request
field (``param``) it concerns. The API has a single handler for the base class
that writes ``{"error": {"code", "message", "param"}}``; the CLI prints the
message. Lower layers translate foreign exceptions into this tree at their
boundary (``raise EngineFailed(...) from exc``) so that callers never have to
guess what a ``ValueError`` meant::

    VoxserveError (500 internal_error)
    ├── InvalidRequest (400 invalid_request)
    │   └── UnsupportedValue (422 unsupported_value)
    │       ├── CapabilityMissing (422 capability_missing)
    │       ├── EngineRejected (422 engine_rejected)
    │       ├── NothingToSay (422 nothing_to_say: only pauses or empty markup)
    │       ├── InvalidAudio (422 invalid_audio: a reference that breaks a rule)
    │       └── Moderated (422 moderated: text the moderation refused, with its reason)
    ├── InvalidHost (400 invalid_host: a Host header not on the allowed list)
    ├── Unauthorized (401 unauthorized: no key, or one that is unknown, expired or revoked)
    ├── Forbidden (403 forbidden: a path or host outside what is allowed)
    │   ├── ScopeMissing (403 insufficient_scope: the key lacks the scope a route needs)
    │   └── ForeignOrigin (403 forbidden_origin: a browser page of another site, not allowed)
    ├── NotFound (404 not_found)
    │   ├── UnknownVoice (404 unknown_voice)
    │   ├── UnknownModel (404 unknown_model)
    │   └── JobNotFound (404 job_not_found)
    ├── Conflict (409 conflict)
    │   ├── IdempotencyConflict (409 idempotency_conflict)
    │   └── JobNotSucceeded (409 job_not_succeeded)
    ├── PayloadTooLarge (413 input_too_large)
    │   └── AudioTooLong (413 audio_too_long: more audio than a request may make)
    ├── RangeNotSatisfiable (416 range_not_satisfiable, with Content-Range)
    ├── RateLimited (429 rate_limited, with Retry-After and X-RateLimit-*)
    ├── UnsupportedMediaType (415 unsupported_media_type)
    ├── InsufficientStorage (507 insufficient_storage)
    ├── ClientGone (499 client_closed_request: hung up before the first audio; never sent)
    ├── StoreUnavailable (503 store_unavailable: the job store does not answer)
    ├── ModerationUnavailable (503 moderation_unavailable: the moderation service did not answer)
    ├── NotReady (503 not_ready, with Retry-After)
    │   └── Busy (503 busy: the embedded engine's queue is full or its wait too long)
    └── EngineError (502 engine_error)
        ├── EmptyAudio (502 empty_audio)
        ├── EngineFailed (502 engine_failed: it broke off or answered 500 for this input, twice)
        ├── EngineUnavailable (503 engine_unavailable: refused, reset, 5xx)
        ├── EngineOverloaded (503 engine_overloaded: out of memory, 429, 503)
        └── EngineTimeout (504 engine_timeout)
"""

from __future__ import annotations


class VoxserveError(Exception):
    """Base of every error voxserve reports to a client."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict[str, str | None]:
        """The body of the ``error`` object in the API's JSON error shape."""
        return {"code": self.code, "message": self.message, "param": self.param}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries: every 503 says when to retry."""
        return {"Retry-After": "1"} if self.status_code == 503 else {}


class InvalidRequest(VoxserveError):
    """The request is malformed (bad JSON, wrong type, out-of-range value)."""

    status_code = 400
    code = "invalid_request"


class UnsupportedValue(InvalidRequest):
    """The request is well-formed but asks for something voxserve cannot do."""

    status_code = 422
    code = "unsupported_value"


class CapabilityMissing(UnsupportedValue):
    """The chosen engine lacks a capability the request needs (cloning, a language)."""

    code = "capability_missing"


class EngineRejected(UnsupportedValue):
    """The engine refused this input for good (retrying cannot help)."""

    code = "engine_rejected"


class NothingToSay(UnsupportedValue):
    """The input holds pauses or markup but no word to speak: refused rather than answered with silence."""

    code = "nothing_to_say"


class InvalidAudio(UnsupportedValue):
    """Reference audio that decodes badly or breaks a rule (length, rate, silence, clipping)."""

    code = "invalid_audio"


class Moderated(UnsupportedValue):
    """The text moderation refused the input; nothing was made or charged."""

    code = "moderated"


class InvalidHost(VoxserveError):
    """The Host header names a host this service does not answer for (DNS rebinding, a wrong vhost)."""

    status_code = 400
    code = "invalid_host"


class Unauthorized(VoxserveError):
    """No API key, or one that is unknown, expired, disabled or revoked."""

    status_code = 401
    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="voxserve"'}


class Forbidden(VoxserveError):
    """A path outside the allowed directories, or a URL whose host is not allowed."""

    status_code = 403
    code = "forbidden"


class ScopeMissing(Forbidden):
    """The key is valid but lacks the scope the route needs (named in the message and ``param``)."""

    code = "insufficient_scope"


class ForeignOrigin(Forbidden):
    """A state-changing request from a browser page of a site that is not allowed (CSRF)."""

    code = "forbidden_origin"


class NotFound(VoxserveError):
    status_code = 404
    code = "not_found"


class UnknownVoice(NotFound):
    code = "unknown_voice"


class UnknownModel(NotFound):
    code = "unknown_model"


class JobNotFound(NotFound):
    code = "job_not_found"


class Conflict(VoxserveError):
    status_code = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    """An Idempotency-Key seen before came with a different request."""

    code = "idempotency_conflict"


class JobNotSucceeded(Conflict):
    """A job's audio was asked for, but the job failed or was canceled."""

    code = "job_not_succeeded"


class InsufficientStorage(VoxserveError):
    """Job storage is at its configured limit; new jobs are refused, not lost."""

    status_code = 507
    code = "insufficient_storage"


class PayloadTooLarge(VoxserveError):
    status_code = 413
    code = "input_too_large"


class AudioTooLong(PayloadTooLarge):
    """A request would make (or made) more audio than its limit: pauses and slow speeds count."""

    code = "audio_too_long"


class RangeNotSatisfiable(VoxserveError):
    """A Range header asks for bytes the file does not have."""

    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, *, size: int, param: str | None = "Range") -> None:
        super().__init__(message, param=param)
        self.size = size

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


class RateLimited(VoxserveError):
    """A limit of the key (or the client's address) would be passed; nothing was charged."""

    status_code = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        remaining: int,
        reset: float,
        retry_after: int,
        param: str | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.limit, self.remaining, self.reset, self.retry_after = limit, remaining, reset, retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset)),
        }


class UnsupportedMediaType(VoxserveError):
    status_code = 415
    code = "unsupported_media_type"


class ClientGone(VoxserveError):
    """The client hung up while its request waited for its first audio: nothing more is made."""

    status_code = 499
    code = "client_closed_request"


class NotReady(VoxserveError):
    """The service is up but its engines are still loading."""

    status_code = 503
    code = "not_ready"

    def __init__(self, message: str, *, retry_after: int = 2, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StoreUnavailable(VoxserveError):
    """The job store (SQLite, Redis) did not answer; nothing was changed."""

    status_code = 503
    code = "store_unavailable"


class ModerationUnavailable(VoxserveError):
    """The moderation service did not answer in time: nothing unchecked is spoken."""

    status_code = 503
    code = "moderation_unavailable"


class Busy(NotReady):
    """Every slot of an embedded engine is taken and the wait would pass its deadline."""

    code = "busy"


class EngineError(VoxserveError):
    """An engine failed while synthesizing; the message carries its own words."""

    status_code = 502
    code = "engine_error"


class EmptyAudio(EngineError):
    """An engine returned no samples for non-empty text: never passed on as success."""

    code = "empty_audio"


class EngineFailed(EngineError):
    """An engine that was up failed on an input without a word of memory: its answer stopped
    before it finished (CosyVoice raises inside its response generator, after the headers) or it
    answered a bare 500 (EmotiVoice's unknown speaker).

    That is taken for the input's fault (a voice the model lacks, a text its model asserts on):
    the pool (:meth:`voxserve.routing.Pool.synthesize`) asks another instance once, and a second
    failure is this request's own, reported as it is. Only answers of several requests breaking
    off under load are an instance's: overload (a GPU out of memory inside its generator).
    ``broke_off``: the answer stopped short (else it was a 500).
    """

    code = "engine_failed"

    def __init__(self, message: str, *, broke_off: bool) -> None:
        super().__init__(message)
        self.broke_off = broke_off


class EngineUnavailable(EngineError):
    """The engine could not be reached or failed on its side (worth another instance or a retry)."""

    status_code = 503
    code = "engine_unavailable"


class EngineMisconfigured(EngineUnavailable):
    """The engine's server does not have the route its kind calls (404/405): the wrong kind of server
    at that URL, or the wrong URL. No request will mend it; the instance leaves the pool at once."""


class EngineOverloaded(EngineError):
    """The engine ran out of memory or said it is busy: fewer requests at once will help."""

    status_code = 503
    code = "engine_overloaded"


class EngineTimeout(EngineError):
    status_code = 504
    code = "engine_timeout"
