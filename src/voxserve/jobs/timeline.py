"""A job's timeline: where each finished segment is in its audio, kept on disk as it is made.

A line is appended before the segment's progress is saved, so after a crash the lines of every
saved segment are there; lines past the saved progress (written just before the crash) are
dropped when the job resumes. At the end the captions are written beside the audio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voxserve.captions import CaptionLevel, render


class SegmentLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    def keep(self, segments_done: int) -> None:
        """Forget what was logged past the saved progress (a resumed job makes those again)."""
        kept = [entry for entry in self.read() if entry["index"] < segments_done]
        self.path.write_text(
            "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept), encoding="utf-8"
        )

    def append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def write_captions(self, path_of: dict[tuple[str, CaptionLevel], Path]) -> None:
        """Every caption file, each to its path (``path_of[format, level]``)."""
        segments = sorted(self.read(), key=lambda entry: int(entry["index"]))
        for (format_name, level), path in path_of.items():
            path.write_text(render(segments, format_name, level), encoding="utf-8")
