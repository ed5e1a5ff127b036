"""Which language a piece of text is in, as far as engines care: by its script.

Kana means Japanese, other Han characters Chinese, and each other script its
main language (Cyrillic Russian, Hangul Korean, ...); Latin script is English
unless the request names a language. Engines are routed by this, so a
sentence never reaches an engine that does not speak it (which would answer
with silence or noise).
"""

from __future__ import annotations

import re

_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
#: Scripts that name one language well enough to route by, in the order they are tried.
_SCRIPTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(f"[{ranges}]"), code)
    for ranges, code in (
        ("\u3040-\u30ff\u31f0-\u31ff", "ja"),
        ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff", "zh"),
        ("\u1100-\u11ff\u3130-\u318f\uac00-\ud7af", "ko"),
        ("\u0400-\u04ff", "ru"),
        ("\u0370-\u03ff", "el"),
        ("\u0600-\u06ff", "ar"),
        ("\u0590-\u05ff", "he"),
        ("\u0900-\u097f", "hi"),
        ("\u0980-\u09ff", "bn"),
        ("\u0a00-\u0a7f", "pa"),
        ("\u0a80-\u0aff", "gu"),
        ("\u0b80-\u0bff", "ta"),
        ("\u0c00-\u0c7f", "te"),
        ("\u0c80-\u0cff", "kn"),
        ("\u0d00-\u0d7f", "ml"),
        ("\u0d80-\u0dff", "si"),
        ("\u0e00-\u0e7f", "th"),
        ("\u10a0-\u10ff", "ka"),
        ("\u0530-\u058f", "hy"),
        ("\u1200-\u137f", "am"),
        ("\u1000-\u109f", "my"),
    )
)

#: Names some programs and clients use for a language, and voxserve's code for it.
_CODES = {"cmn": "zh", "chinese": "zh", "english": "en", "japanese": "ja"}


def language_code(value: str) -> str:
    """``en-US`` → ``en``, ``zh-CN`` / ``cmn`` → ``zh``: the primary subtag, in lower case."""
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return _CODES.get(code, code)


def detect_language(text: str) -> str:
    """The language of the first script in :data:`_SCRIPTS` the text uses; else English."""
    return next((code for pattern, code in _SCRIPTS if pattern.search(text)), "en")


def is_speakable(text: str) -> bool:
    """True when the text has at least one letter, digit or CJK character."""
    return any(ch.isalnum() for ch in text)


def languages_in(text: str) -> set[str]:
    """Every language some part of the text is in (for choosing an engine).

    Han characters beside kana are Japanese; Latin letters (or no script at all) add English.
    """
    found = {code for pattern, code in _SCRIPTS if pattern.search(text)}
    if "ja" in found:
        found.discard("zh")
    if _LATIN.search(text) or not found:
        found.add("en")
    return found
