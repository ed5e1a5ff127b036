"""Captions from a synthesis's timeline: SRT, WebVTT and a JSON of segments.

A segment is a sentence or a clause (whatever the planner cut), so these are sentence-level
captions; times are where its speech starts and ends in the audio, pauses left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The caption files a job writes beside its audio, by the format asked for.
CAPTION_FORMATS = {"srt": "application/x-subrip", "vtt": "text/vtt", "json": "application/json"}


def file_name(stem: str, format_name: str) -> str:
    """Where captions go beside ``{stem}.<audio>``: ``{stem}.srt``, ``.vtt``, ``.segments.json``."""
    return f"{stem}.segments.json" if format_name == "json" else f"{stem}.{format_name}"


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def _cue_text(text: str) -> str:
    """One cue's text: no blank line inside it (a blank line ends a cue in both formats)."""
    return "\n".join(line for line in text.splitlines() if line.strip()) or "…"


def srt(segments: Iterable[Mapping[str, Any]]) -> str:
    cues = [
        f"{number}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{_cue_text(s['text'])}\n"
        for number, s in enumerate(segments, 1)
    ]
    return "\n".join(cues)


def vtt(segments: Iterable[Mapping[str, Any]]) -> str:
    cues = [
        f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{_cue_text(s['text']).replace('-->', '→')}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def render(segments: Sequence[Mapping[str, Any]], format_name: str) -> str:
    """The captions in ``format_name`` (one of :data:`CAPTION_FORMATS`)."""
    if format_name == "srt":
        return srt(segments)
    if format_name == "vtt":
        return vtt(segments)
    return json.dumps({"segments": list(segments)}, ensure_ascii=False)
