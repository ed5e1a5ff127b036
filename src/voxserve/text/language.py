"""Which language a piece of text is in, as far as engines care: zh, ja or en."""

from __future__ import annotations

import re

_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

SUPPORTED = ("en", "zh", "ja")


def detect_language(text: str) -> str:
    """Kana means Japanese, other Han characters Chinese, anything else English.

    Engines are routed by this, so a Chinese sentence never reaches an
    English-only engine (which would answer with silence).
    """
    if _KANA.search(text):
        return "ja"
    if _HAN.search(text):
        return "zh"
    return "en"


def is_speakable(text: str) -> bool:
    """True when the text has at least one letter, digit or CJK character."""
    return any(ch.isalnum() for ch in text)


_LATIN = re.compile(r"[A-Za-z]")


def languages_in(text: str) -> set[str]:
    """Every language some part of the text is in, in one pass (for choosing an engine)."""
    found = set()
    if _KANA.search(text):
        found.add("ja")
    if _HAN.search(text) and not found:
        found.add("zh")
    if _LATIN.search(text) or not found:
        found.add("en")
    return found
