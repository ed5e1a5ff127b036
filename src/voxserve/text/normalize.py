"""Text normalization: numbers, dates, currency, units read as a person would.

WeTextProcessing (the normalizer CosyVoice uses, offline, with prebuilt FST
rule files in the package) does most of the work for zh and en. A few small
pre-rules fix what it gets wrong: ``GPT-4`` read as a negative number, ``￥``
kept, ``555-1234`` read as a range or subtraction, ``$3.50`` read as "three
point five dollars", ``St.`` and decades like ``1990s`` left alone.
Japanese text passes through: its front end reads numbers itself.

The FSTs run in a process of their own (:mod:`voxserve.fsts`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from voxserve.fsts import FSTS
from voxserve.text.markup import ANY_MARK, has_marks

log = logging.getLogger(__name__)

Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]

_ZH_DIGITS = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
_EN_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EN_DIGITS = dict(zip("0123456789", _EN_WORDS, strict=True))
#: A run of more digits than any number is read as (an id, a card, a hash, or a flood of digits) is
#: read digit by digit, in fours, by a rule: the FSTs take about 5 ms per digit, and read it no better.
LONG_DIGITS = re.compile(r"[0-9]{16,}")
_DECADES = {
    "1": "tens",
    "2": "twenties",
    "3": "thirties",
    "4": "forties",
    "5": "fifties",
    "6": "sixties",
    "7": "seventies",
    "8": "eighties",
    "9": "nineties",
}


def _spell_digits(digits: str, separator: str = " ") -> str:
    return separator.join(digits)


def _digits_en(match: re.Match[str]) -> str:
    run = match.group(0)
    return ", ".join(" ".join(_EN_DIGITS[d] for d in run[i : i + 4]) for i in range(0, len(run), 4))


def _digits_zh(match: re.Match[str]) -> str:
    run = match.group(0)
    return "，".join("".join(_ZH_DIGITS[d] for d in run[i : i + 4]) for i in range(0, len(run), 4))


def _phone_en(match: re.Match[str]) -> str:
    return ", ".join(_spell_digits(group) for group in match.groups() if group)


def _phone_zh(match: re.Match[str]) -> str:
    return "，".join("".join(_ZH_DIGITS[d] for d in group) for group in match.groups() if group)


def _dollars(match: re.Match[str]) -> str:
    whole, cents = match.group(1).replace(",", ""), match.group(2)
    words = f"{whole} dollar" + ("" if whole == "1" else "s")
    if cents and int(cents):
        words += f" and {int(cents)} cent" + ("" if int(cents) == 1 else "s")
    return words


def _decade(match: re.Match[str]) -> str:
    century, tens = match.group(1), match.group(2)
    if tens == "0":
        return f"{century}00s" if not century else f"{century} hundreds"
    return f"{century} {_DECADES[tens]}".strip()


_PHONE = r"(?<![\d-])(\d{3})-(\d{3})-(\d{4})(?![\d-])|(?<![\d-])(\d{3})-(\d{4})(?![\d-])"
_MODEL_NUMBER = (re.compile(r"\b([A-Za-z]{2,})-(\d)"), r"\1 \2")

EN_RULES: list[Rule] = [
    (LONG_DIGITS, _digits_en),
    (re.compile(_PHONE), _phone_en),
    _MODEL_NUMBER,
    (re.compile(r"\$(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?\b"), _dollars),
    (re.compile(r"\b(1\d|20)?(\d)0s\b"), _decade),
    (re.compile(r"\b([A-Z][a-z]+) St\.(?=\s|$)"), r"\1 Street"),
    (re.compile(r"\bSt\. (?=[A-Z])"), "Saint "),
    (re.compile(r"\bAve\.(?=\s|$)"), "Avenue"),
    (re.compile(r"\bvs\.(?=\s)"), "versus"),
    (re.compile(r"\betc\."), "et cetera"),
]

ZH_RULES: list[Rule] = [
    (LONG_DIGITS, _digits_zh),
    (re.compile(_PHONE), _phone_zh),
    _MODEL_NUMBER,
    (re.compile(r"[￥¥](\d+(?:\.\d+)?)元?"), r"\1元"),
    (re.compile(r"\$(\d+(?:\.\d+)?)"), r"\1美元"),
]


#: Digits, symbols and abbreviations: what the normalizers change. Anything
#: else is left as it is, so it need not pass through them.
_NEEDS_WORK = re.compile(r"[\d$%&@#/+=€£¥￥°]|\b(?:Dr|Mr|Mrs|Ms|Prof|Jr|Sr|St|Ave|vs|etc)\.")


def apply_rules(text: str, rules: list[Rule]) -> str:
    """Run the pre-rules in order; each is a regex and a replacement."""
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


class TextNormalizer:
    """Normalizes per language: pre-rules here, WeTextProcessing's rule files in their own process."""

    def __init__(self) -> None:
        self._languages: list[str] = []

    @property
    def loaded(self) -> bool:
        return bool(self._languages)

    def load(self) -> None:
        """Start the FST process (shared by every normalizer of this process) and wait for its FSTs."""
        self._languages = FSTS.languages()

    def _fsts(self, text: str, language: str) -> str:
        return FSTS.normalize(text, language) if language in self._languages else text

    @staticmethod
    def needed(text: str) -> bool:
        """Whether ``text`` has anything to spell out. Text without skips the FSTs, which cost
        about a millisecond per character of English, and the thread hop to run them."""
        return _NEEDS_WORK.search(text) is not None

    def normalize(self, text: str, language: str) -> str:
        """Spell out numbers and symbols; languages without rules pass through; marks stay as they are."""
        if not self.needed(text):
            return text
        if has_marks(text):
            return self._around_marks(text, language)
        if language == "en":
            text = apply_rules(text, EN_RULES)
        elif language == "zh":
            text = apply_rules(text, ZH_RULES)
        return self._fsts(text, language) if self.needed(text) else text

    def _around_marks(self, text: str, language: str) -> str:
        """Each run between marks normalized on its own, its surrounding spaces kept."""

        def run(piece: str) -> str:
            core = piece.strip()
            if not core:
                return piece
            start = piece.index(core[0])
            return piece[:start] + self.normalize(core, language) + piece[start + len(core) :]

        parts, position = [], 0
        for match in ANY_MARK.finditer(text):
            parts += [run(text[position : match.start()]), match.group(0)]
            position = match.end()
        return "".join([*parts, run(text[position:])])
