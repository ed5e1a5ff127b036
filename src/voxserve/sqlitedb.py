"""One SQLite connection owned by one thread: how the job store and the key store use their file.

WAL mode (readers never block the writer; several processes share the
file), ``synchronous = NORMAL`` (durable across crashes of the process), a
busy timeout for the moments another process writes. Every statement runs
on the dedicated thread: one thread hop per operation, never on the event
loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SQLiteThread:
    """``path`` opened on first use, with ``schema`` applied; ``run`` calls a function with it."""

    def __init__(self, path: Path, schema: str, name: str) -> None:
        self.path = path
        self._schema = schema
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA busy_timeout = 10000")
            db.executescript(self._schema)
            self._db = db
        return self._db

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: work(self._connect()))

    async def text(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any]) -> str | None:
        """The first column of the first row ``sql`` selects, as text; None when it selects none."""

        def first(db: sqlite3.Connection) -> str | None:
            row = db.execute(sql, parameters).fetchone()
            return None if row is None else str(row[0])

        return await self.run(first)

    async def close(self) -> None:
        def close(_: sqlite3.Connection) -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        if self._db is not None:
            await self.run(close)
        self._thread.shutdown(wait=True)
