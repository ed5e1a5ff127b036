"""The voices the measured table makes the defaults, as tests expect them."""

from __future__ import annotations

from voxserve.config import VOICE_ERROR_RATES, voice_gender


def best(language: str, gender: str | None = None) -> str:
    """The lowest measured error rate of the language (and gender) in VOICE_ERROR_RATES."""
    rates = VOICE_ERROR_RATES[language]
    return min((v for v in rates if gender is None or voice_gender(v) == gender), key=rates.__getitem__)
