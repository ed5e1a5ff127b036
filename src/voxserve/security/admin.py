"""Managing keys: what ``voxserve keys`` and ``/v1/admin/keys`` both do, written once."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from voxserve.config import Quota, Settings
from voxserve.errors import NotFound
from voxserve.security.keys import ApiKey
from voxserve.security.store import KeyStore


class KeyNotFound(NotFound):
    code = "key_not_found"


class KeyAdmin:
    def __init__(self, store: KeyStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def create(
        self,
        name: str,
        scopes: tuple[str, ...],
        expires_at: float | None = None,
        quota: Quota | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is not stored and cannot be shown again."""
        key, token = ApiKey.create(name, scopes, expires_at, quota)
        await self.store.add(key)
        return key, token

    async def get(self, key_id: str) -> ApiKey:
        key = await self.store.get(key_id)
        if key is None:
            raise KeyNotFound(f"key {key_id!r} does not exist", param="key_id")
        return key

    async def list(self) -> list[ApiKey]:
        return await self.store.list()

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoked for good (kept, with its usage, for the record); it stops at once everywhere."""
        key = await self.get(key_id)
        if key.revoked_at is None:
            key = key.revoked()
            await self.store.save(key)
        return key

    async def update(
        self,
        key_id: str,
        *,
        disabled: bool | None = None,
        quota: Quota | None = None,
        webhook_url: str | None = None,
    ) -> ApiKey:
        """Change what is given (``webhook_url`` ``""``: none)."""
        key = await self.get(key_id)
        if disabled is not None:
            key = replace(key, disabled=disabled)
        if webhook_url is not None:
            key = replace(key, webhook_url=webhook_url or None)
        if quota is not None:
            key = replace(key, quota={**key.quota, **quota.model_dump(exclude_unset=True)})
        await self.store.save(key)
        return key

    async def describe(self, key: ApiKey) -> dict[str, Any]:
        """The key (never its hash), the limits that apply to it, its usage and whether it works now."""
        return {
            **key.view(),
            "state": key.refusal(time.time()) or "active",
            "limits": key.limits(self.settings.limits.keys).model_dump(),
            "usage": await self.store.usage(key.id),
        }
