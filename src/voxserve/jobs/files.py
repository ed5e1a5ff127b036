"""Where a job's audio lives on disk, under ``data_dir/jobs/<job id>/``.

While a job runs, its audio grows in ``audio.pcm`` (s16le at the engine's
rate) and, encoded, in ``stream.<extension>``, one finished segment at a
time; the job's progress records the byte offset after the last finished
segment, so a resumed job truncates the PCM there, re-encodes the stream
from it, and goes on. At the end the stream becomes ``<name>.<extension>``,
the PCM is removed, and the finished files are published to the artifact
store (:mod:`voxserve.storage`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
from pathlib import Path
from typing import BinaryIO

from voxserve.captions import CaptionLevel, file_name
from voxserve.errors import InvalidRequest
from voxserve.storage import ArtifactStore
from voxserve.storage.local import files_under

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PCM_NAME = "audio.pcm"
JOBS_PREFIX = "jobs/"
LIVE = "live/"  # a running job's encoded stream, a part per segment: jobs/<id>/live/<start>-<end>
LIVE_READ = 4 * 1024 * 1024  # bytes of live parts a listener reads at a time


def check_name(name: str, param: str = "name") -> str:
    """Output names become file names: letters, digits, ``_.-`` only, so no path tricks."""
    if not NAME_PATTERN.match(name) or ".." in name:
        raise InvalidRequest(
            f"{param} must be 1-128 letters, digits, '_', '.' or '-' (starting with a letter or digit), "
            f"got {name!r}",
            param=param,
        )
    return name


class JobFiles:
    """A running job's files on this machine, and finished jobs' files in the artifact store.

    The store is ``data_dir`` itself by default: then a job's files are
    already where the store keeps them, publishing moves nothing, and a
    listener follows the growing stream file. With shared storage (S3, a
    NAS), a worker also puts each segment's encoded bytes under
    ``jobs/<id>/live/<start>-<end>`` as it finishes, so a gateway on another
    machine can play a running job, and publishes the finished files under
    ``jobs/<id>/`` before the job is marked succeeded.
    """

    #: How long a measure of the storage used is trusted: walking every job's files takes time.
    usage_cache_seconds = 5.0

    def __init__(self, root: Path, artifacts: ArtifactStore) -> None:
        self.root = root
        self.artifacts = artifacts
        self.in_place = artifacts.local_path(JOBS_PREFIX.rstrip("/")) == root
        self._usage: tuple[float, int] | None = None
        self._usage_lock = threading.Lock()  # jobs running at once measure and charge from their threads

    def directory(self, job_id: str) -> Path:
        path = self.root / check_name(job_id, "id")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pcm(self, job_id: str) -> Path:
        return self.root / job_id / PCM_NAME

    def pcm_bytes(self, job_id: str) -> int:
        """How much of a job's PCM this machine holds (a resumed job goes on from at most there)."""
        try:
            return self.pcm(job_id).stat().st_size
        except FileNotFoundError:
            return 0

    def stream(self, job_id: str, extension: str) -> Path:
        """A running job's encoded audio as it grows (renamed to its output when it finishes)."""
        return self.root / job_id / f"stream.{extension}"

    def open_running(self, job_id: str, name: str, extension: str) -> BinaryIO | None:
        """A running job's stream to read from its start, or its finished file (the stream renamed,
        so a handle opened before reads on to the end); None before either exists. Blocks."""
        for path in (self.stream(job_id, extension), self.output(job_id, name, extension)):
            with contextlib.suppress(FileNotFoundError):
                return open(path, "rb")
        return None

    def output(self, job_id: str, name: str, extension: str) -> Path:
        return self.root / job_id / f"{name}.{extension}"

    def segments(self, job_id: str) -> Path:
        """The job's timeline, a line per finished segment (see :mod:`voxserve.jobs.timeline`)."""
        return self.root / job_id / "segments.jsonl"

    def captions(self, job_id: str, name: str, format_name: str, level: CaptionLevel = "line") -> Path:
        """A finished job's captions beside its audio (:func:`voxserve.captions.file_name`)."""
        return self.root / job_id / file_name(name, format_name, level)

    @staticmethod
    def key(job_id: str, file: str) -> str:
        """Where a finished job's file is in the artifact store."""
        return f"{JOBS_PREFIX}{job_id}/{file}"

    def publish(self, job_id: str, paths: list[Path]) -> None:
        """Put a finished job's files in the store; with shared storage, drop this machine's copies."""
        for path in paths:
            self.artifacts.put_file(self.key(job_id, path.name), path)
        if not self.in_place:
            self.artifacts.delete_prefix(self.key(job_id, LIVE))
            shutil.rmtree(self.root / job_id, ignore_errors=True)

    def restart_live(self, job_id: str, stream: Path) -> None:
        """A (re)started job's stream so far, as its first live part (shared storage only); copied
        from the file, never held in memory whole (a resumed long job's may be hundreds of MB)."""
        if self.in_place:
            return
        self.artifacts.delete_prefix(self.key(job_id, LIVE))
        size = stream.stat().st_size
        if size:
            self.artifacts.put_file(self.key(job_id, _live_part(0, size)), stream)

    def put_live(self, job_id: str, offset: int, data: bytes) -> None:
        """A segment's encoded bytes, at ``offset`` in the job's stream (shared storage only)."""
        if not self.in_place and data:
            self.artifacts.put_bytes(self.key(job_id, _live_part(offset, offset + len(data))), data)

    def live_since(self, job_id: str, sent: int, most: int = LIVE_READ) -> list[bytes]:
        """A running job's stream from byte ``sent`` on, as far as its live parts go, at most ``most``
        bytes (a listener joining a long job reads it a few MB at a time)."""
        blocks: list[bytes] = []
        for key in self.artifacts.keys(self.key(job_id, LIVE)):
            first, _, after = key.rpartition("/")[2].partition("-")
            start, end = int(first), int(after)
            if end <= sent:
                continue  # sent already
            if start > sent or most <= 0:
                break  # a gap (the part before it is not there yet), or enough for now
            stop = min(end, sent + most)
            try:
                data = b"".join(self.artifacts.read(key, sent - start, stop - start))
            except FileNotFoundError:
                break  # the job just finished: its parts went, the output has the rest
            blocks.append(data)
            sent += len(data)
            most -= len(data)
            if sent < end:
                break
        return blocks

    def remove(self, job_id: str) -> None:
        """A job's files, here and in the store. Blocks: run it in a thread."""
        shutil.rmtree(self.root / check_name(job_id, "id"), ignore_errors=True)
        self.artifacts.delete_prefix(self.key(job_id, ""))

    def usage(self) -> int:
        """Bytes used by all jobs' files (this machine's and the store's), measured at most every few
        seconds."""
        with self._usage_lock:
            at = time.monotonic()
            if self._usage is None or at - self._usage[0] > self.usage_cache_seconds:
                total = sum(size for _, size in files_under(self.root))
                if not self.in_place:
                    total += self.artifacts.usage(JOBS_PREFIX)
                self._usage = (at, total)
            return self._usage[1]

    def charge(self, written: int) -> None:
        """Count bytes just written in the cached measure, so a fast job cannot outrun it."""
        with self._usage_lock:
            if self._usage is not None:
                self._usage = (self._usage[0], self._usage[1] + written)


def _live_part(start: int, end: int) -> str:
    """A live part's name says which bytes of the stream it holds, so a listener skips it unread."""
    return f"{LIVE}{start:012d}-{end:012d}"
