"""Voice blends: ``"voiceA(2)+voiceB(1)"``, a weighted mix of an engine's own voices.

An engine that says it can blend (Kokoro: its voices are style vectors)
takes the formula wherever a voice name goes and mixes the vectors with the
weights, normalized to sum to one; a weight left out is 1.
"""

from __future__ import annotations

import re

from voxserve.errors import InvalidRequest
from voxserve.values import Capabilities

_PART = re.compile(r"^\s*([\w.\-]+)\s*(?:\(\s*(\d+(?:\.\d+)?)\s*\))?\s*$")
MAX_PARTS = 8


def is_blend(voice: str) -> bool:
    """A formula rather than a name (a weight alone makes one, so a malformed one is caught)."""
    return "+" in voice or "(" in voice


def parse_blend(formula: str) -> list[tuple[str, float]]:
    """``"a(2)+b"`` → ``[("a", 2/3), ("b", 1/3)]``; InvalidRequest naming the fault otherwise."""
    parts = formula.split("+")
    weighted = []
    for part in parts[: MAX_PARTS + 1]:
        match = _PART.match(part)
        if match is None:
            raise InvalidRequest(
                f"voice blend part {part.strip()!r} is not 'name' or 'name(weight)'", param="voice"
            )
        weighted.append((match.group(1), float(match.group(2) or 1)))
    if not 2 <= len(parts) <= MAX_PARTS:
        raise InvalidRequest(f"a voice blend mixes 2 to {MAX_PARTS} voices, like 'a(2)+b(1)'", param="voice")
    total = sum(weight for _, weight in weighted)
    if total <= 0:
        raise InvalidRequest("voice blend weights add up to zero", param="voice")
    return [(name, weight / total) for name, weight in weighted]


def blend_parts_known(formula: str, capabilities: Capabilities) -> bool:
    return all(capabilities.voice(name) is not None for name, _ in parse_blend(formula))
