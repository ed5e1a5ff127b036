"""Cutting text into pieces an engine accepts, at the most natural place.

Sentences first (pysbd in its English mode, which also handles mixed
Chinese/English text and abbreviations), then clauses (，、：；,;:), then
words (jieba for runs of Chinese). Numbers such as ``3.5`` or ``1,000`` and
markup tags (``[h][ǎo]``, ``{HH AH0}``, ``<break/>``) are single tokens and
never cut. Only a single token longer than the limit is ever cut mid-token.
Joined back together, the pieces are the input, modulo whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import jieba
import pysbd

from voxserve.text.language import is_speakable

#: Markup never split: [pinyin] / [ARPAbet] marks, {phonemes}, <ssml tags>.
MARKUP = re.compile(r"\[[^\[\]\n]{0,64}\]|\{[^{}\n]{0,128}\}|<[^<>\n]{0,256}>")
_SENTENCE_MARK = re.compile(r"[.!?。！？…]")
_PLACEHOLDER_BASE = 0xF0000  # Unicode plane 15: private use, never in real text
_CLAUSE_END = re.compile(r"(?<=[，、：；])|(?<=[,;:])(?!\d)")  # not inside 1,000 or 3:30
_TOKEN = re.compile(
    r"\s+"  # whitespace
    r"|[\U000F0000-\U000FFFFD]"  # a protected markup tag
    r"|\d+(?:[.,:/-]\d+)*%?"  # a number, with its decimal or thousands marks
    r"|[^\W\d_\u3400-\u9fff]+(?:['’-][^\W\d_\u3400-\u9fff]+)*"  # a word in a spaced script
    r"|[\u3400-\u9fff]+"  # a run of Han characters, cut further by jieba
    r"|."  # anything else, one character at a time
)
jieba.setLogLevel(60)


@lru_cache(maxsize=1)
def _sentence_splitter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _protect(text: str) -> tuple[str, list[str]]:
    tags: list[str] = []

    def hide(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return chr(_PLACEHOLDER_BASE + len(tags) - 1)

    return MARKUP.sub(hide, text), tags


def _restore(text: str, tags: list[str]) -> str:
    if not tags:
        return text
    return re.sub(r"[\U000F0000-\U000FFFFD]", lambda m: tags[ord(m.group(0)) - _PLACEHOLDER_BASE], text)


def _length(text: str, tags: list[str]) -> int:
    """Length of protected text as the engine will see it (tags at full length)."""
    extra = sum(len(tags[ord(ch) - _PLACEHOLDER_BASE]) - 1 for ch in text if ord(ch) >= _PLACEHOLDER_BASE)
    return len(text) + extra


def _split(line: str) -> list[str]:
    """pysbd's sentences, skipped (a tenth of a millisecond per line) when no mark could end one
    before the line does: the usual single sentence of a streamed request."""
    if _SENTENCE_MARK.search(line.rstrip()[:-1]) is None:
        return [line]
    return _sentence_splitter().segment(line)  # type: ignore[no-any-return]


def sentences(text: str) -> Iterator[str]:
    """Sentences of the text, stripped, line by line so memory stays flat."""
    for line in text.splitlines():
        if not line.strip():
            continue
        protected, tags = _protect(line)
        for sentence in _split(protected):
            sentence = sentence.strip()
            if sentence:
                yield _restore(sentence, tags)


def _tokens(text: str) -> Iterator[str]:
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if len(token) > 1 and "\u3400" <= token[0] <= "\u9fff":
            yield from jieba.cut(token, HMM=False)
        else:
            yield token


def _pack(units: list[str], limit: int, tags: list[str]) -> Iterator[str]:
    """Greedily join units into pieces no longer than the limit."""
    current = ""
    for unit in units:
        if current and _length((current + unit).strip(), tags) > limit:
            yield current
            current = ""
        current += unit
    if current.strip():
        yield current


def _hard_cut(token: str, limit: int) -> list[str]:
    return [token[i : i + limit] for i in range(0, len(token), limit)]


def fit(sentence: str, limit: int) -> list[str]:
    """One sentence as pieces of at most ``limit`` characters: clauses, then words."""
    if len(sentence) <= limit:
        return [sentence]
    protected, tags = _protect(sentence)
    pieces: list[str] = []
    for clause in _pack(_CLAUSE_END.split(protected), limit, tags):
        if _length(clause.strip(), tags) <= limit:
            pieces.append(clause)
            continue
        words: list[str] = []
        for token in _tokens(clause):
            too_long = _length(token, tags) > limit and not token.isspace()
            words.extend(_hard_cut(token, limit) if too_long else [token])
        pieces.extend(_pack(words, limit, tags))
    return [_restore(p.strip(), tags) for p in pieces if p.strip()]


def merge_unspeakable(pieces: list[str], limit: int) -> list[str]:
    """Attach pieces with nothing to say ("…", "——") to a neighbour, so no piece is empty.

    A piece of pure punctuation goes to the end of the previous piece when it
    fits, else to the start of the next one when that fits, else it stays alone.
    """
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        if is_speakable(piece):
            if carry and len(carry) + 1 + len(piece) <= limit:
                piece = f"{carry} {piece}"
            elif carry:
                merged.append(carry)  # too long to join: it stays alone (and is not spoken)
            carry = ""
            merged.append(piece)
        elif merged and len(merged[-1]) + len(piece) + 1 <= limit:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            carry = f"{carry} {piece}".strip()
    if carry:
        merged.append(carry)
    return merged


def split_text(text: str, limit: int) -> list[str]:
    """All pieces of a text, each within ``limit`` characters, none empty."""
    pieces = [piece for sentence in sentences(text) for piece in fit(sentence, limit)]
    return merge_unspeakable(pieces, limit)
