"""Security: API keys (stored hashed), scopes, quotas and rate limits, client addresses, moderation."""

from voxserve.security.guard import Guard, Principal
from voxserve.security.keys import ApiKey
from voxserve.security.quotas import Admitted, QuotaLimiter, open_limiter
from voxserve.security.store import KeyStore, open_key_store

__all__ = [
    "Admitted",
    "ApiKey",
    "Guard",
    "KeyStore",
    "Principal",
    "QuotaLimiter",
    "open_key_store",
    "open_limiter",
]
