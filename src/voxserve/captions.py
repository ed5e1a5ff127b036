"""Captions from a synthesis's timeline: SRT, WebVTT and a JSON of segments.

Line-level captions have a cue per segment (a sentence or a clause: whatever the planner cut);
word-level ones a cue per word where the segment has its words' times (Kokoro), and the
segment's line where it has not. Times are where speech starts and ends, pauses left out.
In a multi-voice text each cue says who speaks: WebVTT's voice span (``<v Alice>``), and
``Alice: `` before an SRT line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

#: Caption formats and their media types.
CAPTION_FORMATS = {"srt": "application/x-subrip", "vtt": "text/vtt", "json": "application/json"}
CaptionLevel = Literal["line", "word"]
#: The caption files written beside an audio: each format by line, SRT and WebVTT also by word (the
#: segments' JSON has the words already).
CAPTION_FILES: tuple[tuple[str, CaptionLevel], ...] = (
    ("srt", "line"),
    ("vtt", "line"),
    ("json", "line"),
    ("srt", "word"),
    ("vtt", "word"),
)


def file_name(stem: str, format_name: str, level: CaptionLevel = "line") -> str:
    """Where captions go beside ``{stem}.<audio>``: ``{stem}.srt``, ``.vtt``, ``.segments.json``,
    and by word ``{stem}.words.srt``, ``.words.vtt``."""
    if format_name == "json":
        return f"{stem}.segments.json"
    return f"{stem}.words.{format_name}" if level == "word" else f"{stem}.{format_name}"


def shifted_entry(segment: Mapping[str, Any], by: float) -> dict[str, Any]:
    """A segment's entry ``by`` seconds later (its words too): a chapter's in a whole book."""
    moved = {**segment, "start": round(segment["start"] + by, 3), "end": round(segment["end"] + by, 3)}
    if "words" in segment:
        moved["words"] = [
            {**w, "start": round(w["start"] + by, 3), "end": round(w["end"] + by, 3)}
            for w in segment["words"]
        ]
    return moved


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def _speaker(cue: Mapping[str, Any]) -> str | None:
    """Who speaks a cue, on one line and with no cue timing in it (a speaker's name is the input's)."""
    speaker = " ".join(str(cue.get("speaker") or "").replace("-->", "→").split())
    return speaker or None


def _cue_text(text: str) -> str:
    """One cue's text: no blank line inside it (a blank line ends a cue in both formats)."""
    return "\n".join(line for line in text.splitlines() if line.strip()) or "…"


def cues(segments: Iterable[Mapping[str, Any]], level: CaptionLevel) -> Iterator[Mapping[str, Any]]:
    """What each cue shows (``text``, ``start``, ``end``): segments, or their words where known."""
    for segment in segments:
        words = segment.get("words") if level == "word" else None
        if words:
            speaker = segment.get("speaker")
            yield from (
                {"text": w["word"], "start": w["start"], "end": w["end"], "speaker": speaker} for w in words
            )
        else:
            yield segment


def srt(segments: Iterable[Mapping[str, Any]], level: CaptionLevel = "line") -> str:
    def text(cue: Mapping[str, Any]) -> str:
        speaker = _speaker(cue)
        return _cue_text(f"{speaker}: {cue['text']}" if speaker else cue["text"]).replace("-->", "→")

    return "\n".join(
        f"{number}\n{_clock(c['start'], ',')} --> {_clock(c['end'], ',')}\n{text(c)}\n"
        for number, c in enumerate(cues(segments, level), 1)
    )


def vtt(segments: Iterable[Mapping[str, Any]], level: CaptionLevel = "line") -> str:
    def text(cue: Mapping[str, Any]) -> str:
        words = _cue_text(cue["text"]).replace("-->", "→")
        speaker = _speaker(cue)
        if not speaker:
            return words
        escaped = words.replace("&", "&amp;").replace("<", "&lt;")
        name = str(speaker).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f"<v {name}>{escaped}"

    return "WEBVTT\n\n" + "\n".join(
        f"{_clock(c['start'], '.')} --> {_clock(c['end'], '.')}\n{text(c)}\n" for c in cues(segments, level)
    )


def render(segments: Sequence[Mapping[str, Any]], format_name: str, level: CaptionLevel = "line") -> str:
    """The captions in ``format_name`` (one of :data:`CAPTION_FORMATS`) at ``level``."""
    if format_name == "srt":
        return srt(segments, level)
    if format_name == "vtt":
        return vtt(segments, level)
    return json.dumps({"segments": list(segments)}, ensure_ascii=False)
