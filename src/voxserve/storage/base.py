"""The artifact store's interface: whole objects under ``/``-separated keys.

Every method blocks on disk or the network: callers run them in a thread.
Keys are made by voxserve (job ids, voice ids, checked names), never taken
from a request as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from voxserve.errors import VoxserveError

READ_BLOCK = 64 * 1024  # bytes yielded per step of a ranged read


class StorageError(VoxserveError):
    """The artifact store failed (unreachable, refused); the request may be retried later."""

    status_code = 503
    code = "storage_unavailable"


class ArtifactStore(Protocol):
    """Objects under keys. ``local_path`` lets a local store hand out files (sendfile, growing files)."""

    def local_path(self, key: str) -> Path | None:
        """Where the object lives on this machine's file system, if the store is a directory."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a file's content under ``key`` (replacing it); readers never see half of it."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes | None:
        """The whole object, None if there is none."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes, None if there is none."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` up to (not including) ``end`` of an object, a block at a time."""

    def keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted."""

    def usage(self, prefix: str) -> int:
        """Bytes stored under ``prefix``."""

    def delete(self, key: str) -> None:
        """Remove one object; nothing if it is not there."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix``."""
