"""Where a job's audio lives on disk, under ``data_dir/jobs/<job id>/``.

While a job runs, its audio grows in ``audio.pcm`` (s16le at the engine's
rate) and, encoded, in ``stream.<extension>``, one finished segment at a
time; the job's progress records the byte offset after the last finished
segment, so a resumed job truncates the PCM there, re-encodes the stream
from it, and goes on. At the end the stream becomes ``<name>.<extension>``
and the PCM is removed.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from voxserve.captions import file_name
from voxserve.errors import InvalidRequest

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PCM_NAME = "audio.pcm"


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
    """The jobs directory, with a cached measure of how much disk it takes."""

    def __init__(self, root: Path, usage_cache_seconds: float = 5.0) -> None:
        self.root = root
        self._usage: tuple[float, int] | None = None
        self._cache_seconds = usage_cache_seconds

    def directory(self, job_id: str) -> Path:
        path = self.root / check_name(job_id, "id")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pcm(self, job_id: str) -> Path:
        return self.root / job_id / PCM_NAME

    def output(self, job_id: str, name: str, extension: str) -> Path:
        return self.root / job_id / f"{name}.{extension}"

    def segments(self, job_id: str) -> Path:
        """The job's timeline, a line per finished segment (see :mod:`voxserve.jobs.timeline`)."""
        return self.root / job_id / "segments.jsonl"

    def captions(self, job_id: str, name: str, format_name: str) -> Path:
        """A finished job's captions beside its audio: ``{name}.srt``, ``.vtt``, ``.segments.json``."""
        return self.root / job_id / file_name(name, format_name)

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def usage(self) -> int:
        """Bytes used by all jobs' files, measured at most every few seconds."""
        at = time.monotonic()
        if self._usage is None or at - self._usage[0] > self._cache_seconds:
            total = (
                sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())
                if self.root.exists()
                else 0
            )
            self._usage = (at, total)
        return self._usage[1]

    def charge(self, written: int) -> None:
        """Count bytes just written in the cached measure, so a fast job cannot outrun it."""
        if self._usage is not None:
            self._usage = (self._usage[0], self._usage[1] + written)
