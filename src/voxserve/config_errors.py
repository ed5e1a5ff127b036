"""Settings mistakes said plainly: the file, the key, what is allowed, and "did you mean" for a typo.

pydantic's own report names its internals (``Extra inputs are not permitted``, a link per error);
someone who mistyped ``port`` in ``voxserve.toml`` wants to read ``prot: not a setting; did you mean
port?``. Unknown ``VOXSERVE_*`` variables are worth a warning too: the environment does not refuse
them, so a typo there would silently change nothing.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

#: ``VOXSERVE_*`` variables that are not settings: read by the commands themselves.
COMMAND_VARIABLES = frozenset({"VOXSERVE_CONFIG", "VOXSERVE_URL", "VOXSERVE_API_KEY"})
PREFIX = "VOXSERVE_"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings table a field holds (also inside ``list[...]`` or ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _keys_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the table at ``loc`` (a key path; list indices are skipped) accepts."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        current = _model_of(field.annotation) if field is not None else None
    return sorted(current.model_fields) if current is not None else []


def _dotted(loc: Sequence[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word`` (case aside), if one is close."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean port?"`` for the closest choice, or nothing when none is close."""
    close = closest(word, choices)
    return f"; did you mean {close}?" if close else ""


def explain(
    error: ValidationError, model: type[BaseModel], config_file: Path | None, within: str = ""
) -> str:
    """Every problem of ``error`` on a line: where, which key, what is wrong, what is allowed.

    ``within``: the key of the table ``model`` was checked as (an engine's ``options``).
    """
    where = f"{config_file}: " if config_file else ""
    lines = []
    for problem in error.errors():
        loc = problem["loc"]
        key = _dotted([*([within] if within else []), *loc])
        if problem["type"] == "extra_forbidden":
            allowed = _keys_at(model, loc[:-1])
            lines.append(f"{where}{key}: not a setting{did_you_mean(str(loc[-1]), allowed)}")
            continue
        message = problem["msg"].removeprefix("Value error, ")
        given = problem.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and len(repr(given)) < 80 else ""
        lines.append(f"{where}{f'{key}: ' if key else ''}{message}{shown}")  # no key: the settings as a whole
    return "\n".join(lines)


def unknown_variables(model: type[BaseModel], environ: Mapping[str, str] = os.environ) -> list[str]:
    """A warning for each ``VOXSERVE_*`` variable that names no setting (``__`` enters a table)."""
    warnings = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in COMMAND_VARIABLES:
            continue
        path = name[len(PREFIX) :].lower().split("__")
        for depth, part in enumerate(path):
            allowed = _keys_at(model, path[:depth])
            if not allowed:
                break  # inside a value (a dict or a list): not ours to check
            if part not in allowed:
                close = closest(part, allowed)
                meant = (PREFIX + "__".join([*path[:depth], close])).upper() if close else None
                hint = f"; did you mean {meant}?" if meant else ""
                warnings.append(f"{name} is not a voxserve setting and changes nothing{hint}")
                break
    return warnings
