"""API keys: what a key is, how its token looks, and how it is checked.

A token is ``vx_<key id>_<secret>``: the id finds the stored key in one
lookup, the secret (256 random bits) proves it. Only the SHA-256 of the
whole token is stored, so the store (or a copy of it) cannot give keys away;
a token this random needs no slow hash. The token is shown once, when the
key is made. A key has scopes, may expire, and can be disabled or revoked;
its own limits override the configured defaults.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

from voxserve.config import SCOPES, Quota

TOKEN = re.compile(r"^vx_(k_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The key id a well-formed token names; None for anything else."""
    match = TOKEN.match(token)
    return match.group(1) if match else None


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: never its token, only the token's hash."""

    id: str
    name: str
    hash: str
    scopes: tuple[str, ...]
    created_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    disabled: bool = False
    revoked_at: float | None = None
    quota: dict[str, Any] = field(default_factory=dict)  # the key's own limits (Quota fields)
    webhook_url: str | None = None  # where its jobs post their end unless they say otherwise

    @classmethod
    def create(
        cls,
        name: str,
        scopes: tuple[str, ...],
        expires_at: float | None = None,
        quota: Quota | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token (the only time the token exists outside the client)."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scope {', '.join(unknown)}; scopes are {', '.join(SCOPES)}")
        key_id = f"k_{secrets.token_hex(6)}"
        token = f"vx_{key_id}_{secrets.token_urlsafe(32)}"
        own = quota.model_dump(exclude_unset=True) if quota else {}
        return cls(key_id, name, token_hash(token), tuple(scopes), expires_at=expires_at, quota=own), token

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.hash, token_hash(token))

    def refusal(self, at: float) -> str | None:
        """Why the key cannot be used now, or None."""
        if self.revoked_at is not None:
            return "revoked"
        if self.disabled:
            return "disabled"
        if self.expires_at is not None and at >= self.expires_at:
            return "expired"
        return None

    def limits(self, defaults: Quota) -> Quota:
        return Quota(**self.quota).over(defaults)

    def revoked(self) -> ApiKey:
        return replace(self, revoked_at=time.time())

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["scopes"] = list(self.scopes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiKey:
        return cls(**{**data, "scopes": tuple(data["scopes"])})

    def view(self) -> dict[str, Any]:
        """What the API and the CLI show of a key: everything but its hash."""
        data = self.to_dict()
        del data["hash"]
        return data
