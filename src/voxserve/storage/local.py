"""The artifact store as a directory: ``data_dir`` by default, or a shared NFS/NAS mount."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from voxserve.storage.base import READ_BLOCK


def files_under(directory: Path) -> Iterator[tuple[Path, int]]:
    """Every file below ``directory`` and its size, while other processes may be removing some of
    them (a job that ends, the janitor): what vanishes during the walk is left out, not an error."""
    for parent, _, names in os.walk(directory):  # os.walk skips directories it cannot list
        for name in names:
            path = Path(parent, name)
            with contextlib.suppress(FileNotFoundError):
                yield path, path.stat().st_size


class LocalStore:
    """Keys are paths under ``root``; writes go through a temporary file and a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = self.root / key
        if ".." in Path(key).parts or Path(key).is_absolute():
            raise ValueError(f"artifact key {key!r} leaves the store")
        return path

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def _write(self, key: str, content: bytes | Path) -> None:
        """Bytes, or a file's content, written whole under a temporary name, then renamed."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        if isinstance(content, Path):
            shutil.copyfile(content, partial)
        else:
            partial.write_bytes(content)
        partial.replace(target)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            if target.samefile(path):
                return  # already where it belongs (the store is the working directory)
        self._write(key, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb") as source:
            source.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                block = source.read(READ_BLOCK if remaining is None else min(READ_BLOCK, remaining))
                if not block:
                    return
                if remaining is not None:
                    remaining -= len(block)
                yield block

    def keys(self, prefix: str) -> list[str]:
        directory = self._path(prefix.rpartition("/")[0]) if "/" in prefix else self.root
        found = (
            path.relative_to(self.root).as_posix()
            for path, _ in files_under(directory)
            if not path.name.startswith(".")  # not a write in progress
        )
        return sorted(key for key in found if key.startswith(prefix))

    def usage(self, prefix: str) -> int:
        return sum(self.size(key) or 0 for key in self.keys(prefix))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.keys(prefix):
            self.delete(key)
        if prefix.endswith("/"):
            shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)
