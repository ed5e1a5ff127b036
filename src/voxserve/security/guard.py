"""Who is asking, what they may do, and what they have used: one service every door goes through.

- :meth:`Guard.authenticate`: the key (``Authorization: Bearer``, ``X-API-Key``)
  read from the store on every request (a revoked key stops at once on every
  replica), or anonymous when auth is off;
- :meth:`Guard.admit`: the principal's quota checked and charged (requests,
  characters, streams), nothing charged if anything is refused;
- :meth:`Guard.record`: usage counted per key (characters, audio and engine
  seconds, requests by status), added up in memory and written to the store
  every second (:meth:`Guard.keep_usage`), so counting costs a request nothing.

Keys, quotas and usage are the key's business only; without auth (one local
user) every request is anonymous, limited per client address if
``limits.anonymous`` says so, and sees everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from voxserve.config import Quota, Settings
from voxserve.errors import ScopeMissing, Unauthorized
from voxserve.security.clientip import client_address, networks
from voxserve.security.keys import ApiKey, key_id_of
from voxserve.security.moderation import Moderation
from voxserve.security.quotas import Admitted, QuotaLimiter
from voxserve.security.store import KeyStore
from voxserve.voices import Viewer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a key, or (auth off) an anonymous client; and its address."""

    key: ApiKey | None
    client: str
    auth: bool

    @property
    def owner(self) -> str | None:
        """What jobs and voices it makes are owned by (nothing without a key)."""
        return self.key.id if self.key else None

    @property
    def admin(self) -> bool:
        return self.key is not None and "admin" in self.key.scopes

    @property
    def subject(self) -> str:
        """What its limits are counted against."""
        return f"key:{self.key.id}" if self.key else f"ip:{self.client}"

    @property
    def webhook_url(self) -> str | None:
        """Where its jobs post their end unless they say (its key's default)."""
        return self.key.webhook_url if self.key else None

    @property
    def sees_all(self) -> bool:
        """Without keys there is one user; with them, admin keys see every key's things."""
        return not self.auth or self.admin

    @property
    def viewer(self) -> Viewer:
        """Whose library voices it may use."""
        return Viewer(self.owner, everyone=self.sees_all)

    def sees(self, owner: str | None) -> bool:
        """Whether it may see a thing owned by ``owner`` (other keys' things do not exist for it)."""
        return self.sees_all or owner == self.owner

    def require(self, scope: str) -> None:
        if self.auth and self.key is not None and scope not in self.key.scopes and not self.admin:
            raise ScopeMissing(
                f"this key lacks the {scope!r} scope (it has {', '.join(self.key.scopes) or 'none'})",
                param=scope,
            )


def presented_token(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip() or None


class Guard:
    def __init__(self, settings: Settings, keys: KeyStore, limiter: QuotaLimiter) -> None:
        self.settings = settings
        self.keys = keys
        self.limiter = limiter
        self.moderation = Moderation(settings.moderation)
        self._trusted = networks(settings.auth.trusted_proxies)
        self._settling: set[asyncio.Task[None]] = set()
        self._usage: dict[str, Counter[str]] = defaultdict(Counter)
        self._unwritten: dict[str, tuple[str, Counter[str]]] = {}  # batch id -> (key id, amounts)
        self._flushing = asyncio.Lock()

    @property
    def auth(self) -> bool:
        return self.settings.auth.enabled

    def client(self, peer: str | None, headers: Mapping[str, str]) -> str:
        return client_address(peer, headers, self._trusted)

    async def authenticate(self, peer: str | None, headers: Mapping[str, str]) -> Principal:
        """The principal of a request; Unauthorized when auth is on and no usable key came."""
        client = self.client(peer, headers)
        if not self.auth:
            return Principal(None, client, auth=False)
        token = presented_token(headers)
        if token is None:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>, or X-API-Key")
        key_id = key_id_of(token)
        key = await self.keys.get(key_id) if key_id else None
        if key is None or not key.matches(token):
            raise Unauthorized("the API key is not valid")
        refusal = key.refusal(time.time())
        if refusal:
            raise Unauthorized(f"the API key {key.id} is {refusal}")
        return Principal(key, client, auth=True)

    def quota(self, principal: Principal) -> Quota:
        limits = self.settings.limits
        return principal.key.limits(limits.keys) if principal.key else limits.anonymous

    async def admit(
        self, principal: Principal, chars: int = 0, stream: bool = False, request: bool = True
    ) -> Admitted:
        """Check and charge the principal's quota for one request of ``chars`` characters (``request``
        False: the characters alone, for a text stream's sentence; the stream was the request)."""
        admitted = await self.limiter.admit(principal.subject, self.quota(principal), chars, stream, request)
        if chars:
            await self.record(principal, {"characters": chars})
        return admitted

    def settle(self, principal: Principal, admitted: Admitted, audio_seconds: float, seconds: float) -> None:
        """A stream ended, however it ended: its slot back, its audio and time counted.

        Done in a task of its own: a stream's end may come in a request that is
        being cancelled, where nothing more may be awaited.
        """
        self._in_background(
            self._settle(principal, admitted, {"audio_seconds": audio_seconds, "engine_seconds": seconds})
        )

    def refund(
        self, principal: Principal, admitted: Admitted, chars: int, characters_only: bool = False
    ) -> None:
        """Take back a charge whose request was not carried out (a replay that met its job first, a
        job the store did not take): its counts and its characters. In a task of its own, so an answer
        that the store is down is not held up by a refund waiting on the same store.
        ``characters_only`` keeps the request counted (a request that was served, if in error)."""
        self._in_background(self._refund(principal, admitted, chars, characters_only))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _refund(
        self, principal: Principal, admitted: Admitted, chars: int, characters_only: bool
    ) -> None:
        try:
            await self.limiter.refund(admitted, characters_only)
        except self.limiter.errors as exc:
            log.warning("a charge of %s was not refunded: %s", principal.subject, exc)
        await self.record(principal, {"characters": -chars})

    async def _settle(self, principal: Principal, admitted: Admitted, amounts: Mapping[str, float]) -> None:
        try:
            await self.limiter.release(admitted)
        finally:
            await self.record(principal, amounts)

    async def record(self, principal: Principal, amounts: Mapping[str, float]) -> None:
        await self.record_key(principal.owner, amounts)

    async def record_key(self, key_id: str | None, amounts: Mapping[str, float]) -> None:
        """Add to a key's usage (nothing without one); written with the next :meth:`flush_usage`."""
        if key_id is not None:
            self._usage[key_id].update(amounts)

    async def flush_usage(self) -> None:
        """Write the usage added up since the last time, a batch per key. A batch the store did not
        confirm is sent again as the same batch: if the first reached a paused store and ran when it
        woke, the second adds nothing. One flush at a time (the timer's and ``/v1/usage``'s), and at
        most one unconfirmed batch per key: what comes meanwhile waits in the next one."""
        async with self._flushing:
            waiting = {key_id for key_id, _ in self._unwritten.values()}
            for key_id in [key_id for key_id in self._usage if key_id not in waiting]:
                self._unwritten[uuid.uuid4().hex] = (key_id, self._usage.pop(key_id))
            for batch, (key_id, amounts) in list(self._unwritten.items()):
                try:
                    await self.keys.add_usage(key_id, amounts, batch)
                except self.keys.errors as exc:
                    log.warning("usage of key %s not written yet: %s", key_id, exc)
                    self._unwritten[batch] = self._unwritten.pop(batch)  # to the back: others go first
                    return  # the store is likely down: the rest waits for the next flush
                del self._unwritten[batch]

    async def keep_usage(self, interval: float = 1.0) -> None:
        """Write usage every ``interval`` seconds, for as long as the service runs."""
        while True:
            await asyncio.sleep(interval)
            await self.flush_usage()

    async def close(self) -> None:
        await asyncio.gather(*self._settling, return_exceptions=True)
        await self.flush_usage()
        await self.moderation.close()
        await self.limiter.close()
        await self.keys.close()
