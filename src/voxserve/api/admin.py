"""``/v1/admin/keys`` (admin scope) and ``/v1/usage`` (a key's own): keys made, listed, changed, revoked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from voxserve.api.auth import metered, user
from voxserve.api.dependencies import get_services
from voxserve.config import Quota
from voxserve.errors import InvalidRequest
from voxserve.security.admin import KeyAdmin, KeyNotFound
from voxserve.security.guard import Principal
from voxserve.services import Services

router = APIRouter()
Admin = Annotated[Principal, Depends(metered("admin"))]
Scope = Literal["speech", "jobs", "voices", "admin"]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    scopes: list[Scope] = Field(default=["speech"], min_length=1)
    expires_at: datetime | None = Field(default=None, description="when it stops working")
    limits: Quota | None = Field(default=None, description="its own limits, over the configured defaults")


class KeyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool | None = None
    limits: Quota | None = None
    webhook_url: str | None = Field(
        default=None, max_length=2048, description="where the key's jobs post their end ('': none)"
    )


def key_admin(services: Annotated[Services, Depends(get_services)]) -> KeyAdmin:
    return KeyAdmin(services.guard.keys, services.settings)


Keys = Annotated[KeyAdmin, Depends(key_admin)]


@router.post("/v1/admin/keys", status_code=201)
async def create_key(body: NewKey, keys: Keys, _: Admin) -> JSONResponse:
    """A new key; ``token`` is in this answer only (it is stored hashed)."""
    expires = body.expires_at.timestamp() if body.expires_at else None
    key, token = await keys.create(body.name, tuple(body.scopes), expires, body.limits)
    return JSONResponse({**await keys.describe(key), "token": token}, status_code=201)


@router.get("/v1/admin/keys")
async def list_keys(keys: Keys, _: Admin) -> dict[str, Any]:
    return {"keys": [await keys.describe(key) for key in await keys.list()]}


@router.get("/v1/admin/keys/{key_id}")
async def get_key(key_id: str, keys: Keys, _: Admin) -> dict[str, Any]:
    return await keys.describe(await keys.get(key_id))


@router.patch("/v1/admin/keys/{key_id}")
async def change_key(
    key_id: str, body: KeyChange, keys: Keys, _: Admin, services: Annotated[Services, Depends(get_services)]
) -> dict[str, Any]:
    """Disable or enable a key, change its limits or its jobs' default webhook (fields left out stay
    as they are). A webhook URL is checked as a job's is."""
    if body.webhook_url:
        await services.webhooks.check_url(body.webhook_url)
    changed = await keys.update(
        key_id, disabled=body.disabled, quota=body.limits, webhook_url=body.webhook_url
    )
    return await keys.describe(changed)


@router.delete("/v1/admin/keys/{key_id}")
async def revoke_key(key_id: str, keys: Keys, _: Admin) -> dict[str, Any]:
    """Revoke a key for good; it stops at once on every replica."""
    return await keys.describe(await keys.revoke(key_id))


@router.get("/v1/usage")
async def usage(
    keys: Keys,
    services: Annotated[Services, Depends(get_services)],
    principal: Annotated[Principal, Depends(user())],
    key_id: Annotated[str | None, Query(description="another key's (admin only)")] = None,
) -> dict[str, Any]:
    """The key's own usage, limits and state (an admin may ask for any key's); not counted against
    the key's request rate, so a key at its limit can see why."""
    if principal.key is None:
        raise InvalidRequest("usage is counted per API key, and keys are off (auth.enabled)", param=None)
    wanted = key_id or principal.key.id
    if wanted != principal.key.id and not principal.admin:  # another key's: not there for this one
        raise KeyNotFound(f"key {wanted!r} does not exist", param="key_id")
    await services.guard.flush_usage()  # what this process counted, up to this request
    return await keys.describe(await keys.get(wanted))
