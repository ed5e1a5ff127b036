"""What a batch is made of: a CSV, a JSONL file or a folder of .txt files, read and checked whole.

Every row is checked before anything is sent, and every bad row is reported with its line number,
so a manifest of ten thousand lines is fixed in one pass rather than one error per run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from voxserve.client.outputs import format_name
from voxserve.request import PITCH, SEED, SPEED, Cast, brief

#: An item's id becomes its file name: letters, digits, and ._- only, never a path.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_ITEMS = 1_000_000


class Row(BaseModel):
    """One line of a manifest, as written: ``text`` or ``file``, and how to say it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, pattern=f"^{ID.pattern}$")  # whole: a search would pass "../x"
    text: str | None = None
    file: str | None = None
    voice: str | None = None
    reference: str | None = None
    model: str | None = None
    format: str = "mp3"
    seed: int | None = Field(default=None, ge=SEED[0], le=SEED[1])
    speed: float | None = Field(default=None, ge=SPEED[0], le=SPEED[1])
    pitch: float | None = Field(default=None, ge=PITCH[0], le=PITCH[1])
    language: str | None = Field(default=None, max_length=16)
    emotion: str | None = Field(default=None, max_length=64)
    instructions: str | None = Field(default=None, max_length=4096)
    #: a multi-voice text's speakers (a JSON object; in a CSV, its cell holds the JSON)
    voices: Cast | None = None

    @field_validator("voices", mode="before")
    @classmethod
    def _json_cell(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"voices is not a JSON object ({exc.msg} at column {exc.colno})") from None

    @model_validator(mode="after")
    def _one_text(self) -> Row:
        if (self.text is None) == (self.file is None):
            raise ValueError("give either text or file")
        if self.voice and self.reference:
            raise ValueError("give either voice or reference")
        self.format = format_name(self.format)
        return self


@dataclass(frozen=True)
class Item:
    """One piece of work: its id (the output's name), text, and the speech request's fields."""

    line: int
    id: str
    text: str
    format: str
    reference: Path | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """What the output was made from: a rerun keeps an output only when this is unchanged."""
        described = {**asdict(self), "line": None, "reference": str(self.reference or "")}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def output_name(self) -> str:
        return f"{self.id}.{'ogg' if self.format == 'opus' else self.format}"


class ManifestError(ValueError):
    """Every problem of a manifest, a line each."""

    def __init__(self, source: Path, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n".join(problems[:50]) + (
            f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        )
        super().__init__(f"{source}: {len(problems)} bad row(s)\n{shown}")


def _rows(source: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, fields) of every row; a folder is one row per .txt file (its name the id)."""
    if source.is_dir():
        return [(0, {"id": path.stem, "file": path.name}) for path in sorted(source.glob("*.txt"))]
    if source.suffix.lower() == ".csv":
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            return [
                (reader.line_num, {k: v for k, v in row.items() if k and v not in ("", None)})
                for row in reader
            ]
    rows = []
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                value = {"__error__": f"not JSON ({exc.msg} at column {exc.colno})"}
            rows.append((number, value if isinstance(value, dict) else {"__error__": "not a JSON object"}))
    return rows


def _problem(where: str, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        parts.append(f"{key}: {error['msg']}" if key else error["msg"].removeprefix("Value error, "))
    return f"{where}: " + "; ".join(parts)


def read_manifest(source: Path, max_chars: int) -> list[Item]:
    """Every item of ``source``, checked; :class:`ManifestError` lists every bad row first.

    ``file`` paths are relative to the manifest's folder; ids must be unique (absent ones are made
    from the line number, so a rerun of the same manifest gives the same names).
    """
    base = source if source.is_dir() else source.parent
    items: list[Item] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for index, (number, raw) in enumerate(_rows(source)[: MAX_ITEMS + 1]):
        where = f"line {number}" if number else f"file {raw.get('file')}"
        if index == MAX_ITEMS:
            problems.append(f"more than {MAX_ITEMS} items; split the manifest")
            break
        if "__error__" in raw:
            problems.append(f"{where}: {raw['__error__']}")
            continue
        try:
            row = Row.model_validate(raw)
            item = _item(row, number or index + 1, base, max_chars)
        except ValidationError as exc:
            problems.append(_problem(where, exc))
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if item.id in seen:
            problems.append(f"{where}: id {item.id!r} is used again ({seen[item.id]} has it)")
            continue
        seen[item.id] = where
        items.append(item)
    if problems:
        raise ManifestError(source, problems)
    if not items:
        raise ManifestError(source, ["no items"])
    return items


def _item(row: Row, number: int, base: Path, max_chars: int) -> Item:
    text = row.text if row.text is not None else _read(base, row.file or "")
    if not text.strip():
        raise ValueError("the text is empty")
    if len(text) > max_chars:
        raise ValueError(f"the text is {len(text)} characters; the limit is {max_chars}")
    reference = _inside(base, row.reference) if row.reference else None
    if reference is not None and not reference.is_file():
        raise ValueError(f"reference {row.reference!r} is not a file")
    fields = row.model_dump(exclude={"id", "text", "file", "reference", "format"}, exclude_none=True)
    if row.voices:  # a role's unset fields are the request's, not nulls
        fields["voices"] = brief(row.voices)
    return Item(number, row.id or f"item{number:06d}", text, row.format, reference, fields)


def _inside(base: Path, name: str) -> Path:
    """A path the manifest names, which must stay inside the manifest's folder."""
    path = (base / name).resolve()
    if not path.is_relative_to(base.resolve()):
        raise ValueError(f"{name!r} is outside the manifest's folder")
    return path


def _read(base: Path, name: str) -> str:
    path = _inside(base, name)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"file {name!r} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"file {name!r} is not UTF-8 text") from None
