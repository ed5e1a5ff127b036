"""A content-addressed cache of synthesized segments, bounded by disk size.

The key is everything that decides a segment's audio: the engine and its
sample rate, the normalized text, language, voice (a cloned voice by the
hash of its reference), speed, seed, emotion and instructions. A hit costs a
file read instead of engine time, so a repeated request, or a batch run
again after a fix to a few lines, only synthesizes what changed.

Files are raw float32 samples under ``<dir>/<key[:2]>/<key>.f32``, written
atomically; an engine that tells word times has them beside, in ``<key>.words``
(JSON, written first, removed with the audio), so a request that wants them
is served from the cache too. Each hit touches its file, so eviction (oldest modification
time first, down to 90 % of the limit) drops the least recently used.
Several processes may share the directory; each keeps its own running
total and evicts by what the directory really holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from voxserve.values import PCM, SegmentRequest, WordTime

log = logging.getLogger(__name__)
WORDS = ".words"  # the suffix of a segment's word times, beside its audio


def cache_key(engine: str, sample_rate: int, request: SegmentRequest) -> str:
    parts = {
        "engine": engine,
        "rate": sample_rate,
        "text": request.text,
        "language": request.language,
        "voice": request.voice,
        "speed": round(request.speed, 4),
        "seed": request.seed,
        "emotion": request.emotion,
        "instructions": request.instructions,
        "reference": request.reference.digest if request.reference else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class SegmentCache:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._bytes = sum(path.stat().st_size for path in self._files())
        self._last_use = 0

    def _touch(self, path: Path) -> None:
        """Mark a file used now: strictly after this process's previous use, whatever the clock's grain."""
        with self._lock:
            self._last_use = max(time.time_ns(), self._last_use + 1)
            stamp = self._last_use
        os.utime(path, ns=(stamp, stamp))

    @property
    def size(self) -> int:
        return self._bytes

    def _files(self) -> list[Path]:
        return list(self.directory.glob("??/*.f32")) if self.directory.is_dir() else []

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.f32"

    def contains(self, key: str) -> bool:
        """Whether the cache holds the key now (it may be evicted before it is read)."""
        return self._path(key).is_file()

    def get(self, key: str) -> PCM | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
            self._touch(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        return np.frombuffer(data, dtype=np.float32)

    def words(self, key: str) -> tuple[bool, tuple[WordTime, ...] | None]:
        """(whether word times were stored with the key's audio, and they: None when its engine had
        none for it). Read before the audio, so a hit has both or is treated as a miss."""
        try:
            stored = json.loads(self._path(key).with_suffix(WORDS).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return False, None
        return True, None if stored is None else tuple(WordTime(*entry) for entry in stored)

    def put_words(self, key: str, words: tuple[WordTime, ...] | None) -> None:
        """Store the word times its engine told for a segment (None: none for this text); before
        its audio (:meth:`put`), so audio found has its words."""
        path = self._path(key).with_suffix(WORDS)
        path.parent.mkdir(parents=True, exist_ok=True)
        told = None if words is None else [[word.word, word.start, word.end] for word in words]
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_text(json.dumps(told, ensure_ascii=False), encoding="utf-8")
        partial.replace(path)

    def put(self, key: str, audio: PCM) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        data = np.ascontiguousarray(audio, dtype=np.float32).tobytes()
        partial.write_bytes(data)
        self._touch(partial)
        partial.replace(path)
        with self._lock:
            self._bytes += len(data)
            if self._bytes > self.max_bytes:
                self._evict()

    def _evict(self) -> None:
        """Drop the least recently used files until the cache is at 90 % of its limit."""
        files = []
        for path in self._files():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= 0.9 * self.max_bytes:
                break
            path.unlink(missing_ok=True)
            path.with_suffix(WORDS).unlink(missing_ok=True)
            total -= size
        self._bytes = total
        log.info("segment cache evicted down to %d bytes", total)
