"""Kokoro's voice names (``af_heart``, ``zm_yunxi``): a language letter, f or m, then a name.

What a name says (its language, accent and gender) is read here and nowhere else: by the engine
that lists its voices, and by the settings and the selection that map OpenAI's and
Kokoro-FastAPI's names onto voices of a gender, which must not load an engine to do it.
"""

from __future__ import annotations

import re

#: A voice name's first letter: its language (voxserve's code) and espeak-ng's name for the accent.
LANGUAGE_OF_PREFIX: dict[str, tuple[str, str]] = {
    "a": ("en", "American English"),
    "b": ("en", "British English"),
    "e": ("es", "Spanish"),
    "f": ("fr", "French"),
    "h": ("hi", "Hindi"),
    "i": ("it", "Italian"),
    "j": ("ja", "Japanese"),
    "p": ("pt", "Brazilian Portuguese"),
    "z": ("zh", "Mandarin"),
}
#: A Kokoro voice name, whole.
NAME = re.compile(f"[{''.join(LANGUAGE_OF_PREFIX)}][fm]_[a-z]+")


def language_of(voice: str) -> str:
    return LANGUAGE_OF_PREFIX[voice[0]][0]


def gender_of(voice: str) -> str:
    return "female" if voice[1] == "f" else "male"


def accent_of(voice: str) -> str:
    return LANGUAGE_OF_PREFIX[voice[0]][1]
