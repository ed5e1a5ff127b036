"""A batch's results manifest: one line per item, in input order, as JSONL and CSV beside the outputs.

It is also what a rerun reads to resume: an item whose output is there and was made from the same
request (the digest) is not made again.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from voxserve.client.files import atomic_file

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"


@dataclass
class Result:
    """What became of one item: ``ok``, ``failed`` (with the reason), or ``pending`` (not finished)."""

    id: str
    line: int
    status: str = "pending"
    output: str | None = None
    audio_seconds: float | None = None
    attempts: int = 0
    error: str | None = None
    digest: str = ""


def read_results(out_dir: Path) -> dict[str, Result]:
    """The previous run's results by id (none when there was no run, or its file is unreadable)."""
    path = out_dir / RESULTS_JSONL
    if not path.is_file():
        return {}
    known = {f.name for f in fields(Result)}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            result = Result(**{k: v for k, v in row.items() if k in known})
        except (ValueError, TypeError):
            continue
        found[result.id] = result
    return found


def write_results(out_dir: Path, results: list[Result]) -> None:
    """Both files, each written whole (a Ctrl-C while writing leaves the previous ones)."""
    with atomic_file(out_dir / RESULTS_JSONL) as sink:
        sink.write("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in results).encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(Result)])
    writer.writeheader()
    writer.writerows(asdict(r) for r in results)
    with atomic_file(out_dir / RESULTS_CSV) as sink:
        sink.write(text.getvalue().encode())
