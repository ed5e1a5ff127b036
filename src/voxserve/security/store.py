"""Where keys and their usage live: the job store's backend, so every replica sees the same keys.

SQLite (the embedded default, the job store's file, one thread owning the
connection) or Redis (``key:<id>`` as JSON, ``keys`` the set of ids,
``usage:<id>`` a hash of counters). A key is read on every request, never
cached, so a revoked key stops at once on every replica.
"""

from __future__ import annotations

import json
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voxserve.config import Backend
from voxserve.security.keys import ApiKey
from voxserve.sqlitedb import SQLiteThread

#: How long a usage batch is remembered: longer than any store outage a replica waits through.
BATCH_SECONDS = 86400


class KeyStore(ABC):
    """API keys and the usage counted against each."""

    #: What the backend raises when it cannot be reached (a 503 ``store_unavailable``).
    errors: tuple[type[Exception], ...] = ()

    @abstractmethod
    async def add(self, key: ApiKey) -> None: ...

    @abstractmethod
    async def get(self, key_id: str) -> ApiKey | None: ...

    @abstractmethod
    async def list(self) -> list[ApiKey]:
        """Every key, oldest first."""

    @abstractmethod
    async def save(self, key: ApiKey) -> None:
        """Write back a key that exists (disabled, revoked, new limits)."""

    @abstractmethod
    async def add_usage(self, key_id: str, amounts: Mapping[str, float], batch: str) -> None:
        """Add to the key's counters (characters, audio seconds, requests by status...), once per
        ``batch``: a batch written again adds nothing."""

    @abstractmethod
    async def usage(self, key_id: str) -> dict[str, float]: ...

    @abstractmethod
    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, data TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS key_usage (
    key_id TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (key_id, name)
);
CREATE TABLE IF NOT EXISTS usage_batches (id TEXT PRIMARY KEY, written REAL NOT NULL);
"""


class SQLiteKeyStore(KeyStore):
    """Keys in the job store's SQLite file (tables ``api_keys`` and ``key_usage``)."""

    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sql = SQLiteThread(path, _SCHEMA, "voxserve-keys")
        self._run = self._sql.run

    async def add(self, key: ApiKey) -> None:
        row = (key.id, json.dumps(key.to_dict()), key.created_at)
        await self._run(
            lambda db: db.execute("INSERT INTO api_keys (id, data, created) VALUES (?, ?, ?)", row)
        )

    async def get(self, key_id: str) -> ApiKey | None:
        data = await self._sql.text("SELECT data FROM api_keys WHERE id = ?", (key_id,))
        return None if data is None else ApiKey.from_dict(json.loads(data))

    async def list(self) -> list[ApiKey]:
        def select(db: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in db.execute("SELECT data FROM api_keys ORDER BY created")]

        return [ApiKey.from_dict(json.loads(data)) for data in await self._run(select)]

    async def save(self, key: ApiKey) -> None:
        data = json.dumps(key.to_dict())
        await self._run(lambda db: db.execute("UPDATE api_keys SET data = ? WHERE id = ?", (data, key.id)))

    async def add_usage(self, key_id: str, amounts: Mapping[str, float], batch: str) -> None:
        # One transaction with the batch's mark: a batch sent again (its first write finished after its
        # sender stopped waiting, at shutdown say) adds nothing. Marks are kept a day.
        rows = [(key_id, name, value) for name, value in amounts.items() if value]
        upsert = (
            "INSERT INTO key_usage (key_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (key_id, name) DO UPDATE SET value = value + excluded.value"
        )

        def add(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM usage_batches WHERE written < ?", (time.time() - BATCH_SECONDS,))
                marked = db.execute("INSERT OR IGNORE INTO usage_batches VALUES (?, ?)", (batch, time.time()))
                if marked.rowcount:
                    db.executemany(upsert, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        if rows:
            await self._run(add)

    async def usage(self, key_id: str) -> dict[str, float]:
        def select(db: sqlite3.Connection) -> dict[str, float]:
            rows = db.execute("SELECT name, value FROM key_usage WHERE key_id = ?", (key_id,))
            return {str(name): float(value) for name, value in rows}

        return await self._run(select)

    async def close(self) -> None:
        await self._sql.close()


#: KEYS: the batch's marker, the key's usage hash; ARGV: how long to keep the marker, then names and
#: amounts. Added only the first time the batch arrives.
_ADD_USAGE = """
if not redis.call('set', KEYS[1], 1, 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
for i = 2, #ARGV, 2 do redis.call('hincrbyfloat', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""


class RedisKeyStore(KeyStore):
    """Keys in Redis under the job store's prefix, shared by every replica."""

    def __init__(self, url: str, prefix: str) -> None:
        from redis.exceptions import RedisError

        from voxserve.redisconn import redis_client

        self.errors = (RedisError,)
        self._redis = redis_client(url)
        self._p = prefix
        self._add_usage: Any = self._redis.register_script(_ADD_USAGE)

    async def add(self, key: ApiKey) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self._p}key:{key.id}", json.dumps(key.to_dict()))
            pipe.zadd(f"{self._p}keys", {key.id: key.created_at})
            await pipe.execute()

    async def get(self, key_id: str) -> ApiKey | None:
        data = await self._redis.get(f"{self._p}key:{key_id}")
        return None if data is None else ApiKey.from_dict(json.loads(data))

    async def list(self) -> list[ApiKey]:
        ids = await self._redis.zrange(f"{self._p}keys", 0, -1)
        if not ids:
            return []
        found = await self._redis.mget([f"{self._p}key:{key_id!s}" for key_id in ids])
        return [ApiKey.from_dict(json.loads(data)) for data in found if data is not None]

    async def save(self, key: ApiKey) -> None:
        await self._redis.set(f"{self._p}key:{key.id}", json.dumps(key.to_dict()), xx=True)

    async def add_usage(self, key_id: str, amounts: Mapping[str, float], batch: str) -> None:
        counters = [item for name, value in amounts.items() if value for item in (name, value)]
        if counters:
            keys = [f"{self._p}usage-batch:{batch}", f"{self._p}usage:{key_id}"]
            await self._add_usage(keys=keys, args=[BATCH_SECONDS, *counters])

    async def usage(self, key_id: str) -> dict[str, float]:
        counters = await self._redis.hgetall(f"{self._p}usage:{key_id}")
        return {str(name): float(value) for name, value in counters.items()}

    async def close(self) -> None:
        await self._redis.aclose()


def open_key_store(backend: Backend, prefix: str = "voxserve") -> KeyStore:
    """The key store beside the jobs, in ``backend`` (``Settings.queue_backend``)."""
    if backend.kind == "redis":
        return RedisKeyStore(backend.location, prefix="{" + prefix + "}:")
    return SQLiteKeyStore(Path(backend.location))
