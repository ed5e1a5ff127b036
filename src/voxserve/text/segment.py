"""Cutting text into pieces an engine accepts, at the most natural place.

A stream's first sentence may start with a short piece (:func:`lead`), so the first audio is not
the slowest.

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

#: Markup never split: [pinyin] / [ARPAbet] marks, {phonemes}, <ssml tags>. Marks one after another
#: are one word's (``[ch][óng]``, ``[M][AY0][N]``), and a mark stays with the Han characters it
#: touches, as it stands for one character of their word (``银[h][áng]``).
MARKUP = re.compile(
    r"[\u3400-\u9fff]?(?:\[[^\[\]\n]{0,64}\])+[\u3400-\u9fff]?|\{[^{}\n]{0,128}\}|<[^<>\n]{0,256}>"
)
_SENTENCE_MARK = re.compile(r"[.!?。！？…]")
_SENTENCE_BREAK = re.compile(r"[.!?。！？…]+[\"'”’)）」』]*\s+|[。！？]+")
WINDOW = 1000  # characters of a long line given to pysbd at a time
HAN_RUN = 2000  # characters of an unpunctuated run of Chinese given to jieba at a time
_PLACEHOLDER_BASE = 0xF0000  # Unicode plane 15: private use, never in real text
_MAX_TAGS = 0xFFFFD - _PLACEHOLDER_BASE
_PLACEHOLDER = re.compile(r"[\U000F0000-\U000FFFFD]")
#: A piece that ends a clause (where a short pause sounds natural), closing quotes allowed.
CLAUSE_MARK = re.compile(r"[，、：；,;:][\"'”’)）」』]*$")
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
    """Markup tags hidden behind one private-use character each (any such character the text already
    had is dropped: it has no sound, and it would be taken for a tag)."""
    text = _PLACEHOLDER.sub("", text)
    tags: list[str] = []

    def hide(match: re.Match[str]) -> str:
        if len(tags) >= _MAX_TAGS:  # the private range is full: later tags may be cut, never mangled
            return match.group(0)
        tags.append(match.group(0))
        return chr(_PLACEHOLDER_BASE + len(tags) - 1)

    return MARKUP.sub(hide, text), tags


def _restore(text: str, tags: list[str]) -> str:
    if not tags:
        return text
    return _PLACEHOLDER.sub(lambda m: tags[ord(m.group(0)) - _PLACEHOLDER_BASE], text)


def _length(text: str, tags: list[str]) -> int:
    """Length of protected text as the engine will see it (tags at full length)."""
    if not tags:
        return len(text)
    extra = sum(len(tags[ord(m.group(0)) - _PLACEHOLDER_BASE]) - 1 for m in _PLACEHOLDER.finditer(text))
    return len(text) + extra


def _windows(line: str, size: int = WINDOW) -> Iterator[str]:
    """The line in pieces of about ``size`` characters, each cut after a sentence mark and its space.

    pysbd's time grows faster than the length of what it is given (160k
    characters take 45 s); fed windows of a thousand characters it stays
    linear, and a cut after a mark followed by whitespace is one pysbd would
    make too. A stretch with no such place goes whole to ``fit``, which is linear.
    """
    start = 0
    while len(line) - start > size:
        cut = None
        for match in _SENTENCE_BREAK.finditer(line, start + size // 2, start + 2 * size):
            cut = match.end()
            if cut - start >= size:
                break
        if cut is None:
            following = _SENTENCE_BREAK.search(line, start + 2 * size)
            cut = following.end() if following else len(line)
        yield line[start:cut]
        start = cut
    if start < len(line):
        yield line[start:]


def _split(line: str) -> list[str]:
    """pysbd's sentences, with nothing it drops lost (it returns nothing for ``" !!"``).

    Skipped (a tenth of a millisecond per line) when no mark could end a
    sentence before the line does: the usual single sentence of a streamed request.
    """
    if _SENTENCE_MARK.search(line.rstrip()[:-1]) is None:
        return [line]
    return _spans(line, _sentence_splitter().segment(line))


def _spans(text: str, found: list[str]) -> list[str]:
    """``text`` cut where pysbd's sentences start: whatever pysbd left out joins its neighbour."""
    starts = []
    position = 0
    for sentence in found:
        at = text.find(sentence.strip(), position)
        if at < 0:  # pysbd rewrote something: keep the text as one piece rather than lose any
            return [text]
        starts.append(at)
        position = at + len(sentence.strip())
    if not starts:
        return [text]
    starts[0] = 0
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def sentences(text: str) -> Iterator[str]:
    """Sentences of the text, stripped, line by line so memory stays flat."""
    for line in text.splitlines():
        if not line.strip():
            continue
        for window in _windows(line):
            protected, tags = _protect(window)
            for sentence in _split(protected):
                sentence = sentence.strip()
                if sentence:
                    yield _restore(sentence, tags)


#: Ends a sentence whatever follows it: only a period may still turn out to end ``Dr.`` or ``3.``
_ENDS_FOR_SURE = re.compile(r"[!?。！？…][\"'”’)）」』]*\s*$")


def complete_sentences(text: str, longest: int = WINDOW) -> tuple[list[str], str]:
    """The sentences of text that is still being written (an LLM's answer, piece by piece) known to
    be complete, stripped, each at most ``longest`` characters; and the rest as given, whitespace
    included, for the next piece to continue.

    A line break ends everything before it, and so does ``!``, ``?``, ``。``, ``！``, ``？`` or ``…``
    at the end; a sentence that ends with a period waits until the text goes on: ``Dr.`` and ``3.``
    end no sentence. Linear in the length of the text, like :func:`sentences`: pysbd is given
    windows, and a rest longer than ``longest`` with no sentence end is cut at its clauses or words
    (all but its last piece are complete).
    """
    *lines, last = text.split("\n")
    *whole, tail = list(_windows(last)) or [""]
    done = [sentence for line in [*lines, *whole] for sentence in sentences(line)]
    if len(tail) > longest:
        *cut, tail = fit(tail, longest)
        done.extend(cut)
    protected, tags = _protect(tail)
    spans = _split(protected)
    rest = "" if _ENDS_FOR_SURE.search(spans[-1]) else spans.pop()
    done.extend(_restore(span.strip(), tags) for span in spans if span.strip())
    fitting = [
        piece
        for sentence in done
        for piece in (fit(sentence, longest) if len(sentence) > longest else [sentence])
    ]
    return fitting, _restore(rest, tags)


def _tokens(text: str) -> Iterator[str]:
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if len(token) > 1 and "\u3400" <= token[0] <= "\u9fff":
            # jieba builds a graph of the whole run it is given: give it a page at a time
            for start in range(0, len(token), HAN_RUN):
                yield from jieba.cut(token[start : start + HAN_RUN], HMM=False)
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
            # a tag longer than the limit is cut as the text it stands for: fitting comes first
            words.extend(_hard_cut(_restore(token, tags), limit) if too_long else [token])
        pieces.extend(_pack(words, limit, tags))
    return [_restore(p.strip(), tags) for p in pieces if p.strip()]


_HAN = re.compile(r"[\u3400-\u9fff]")
_WORD_EDGE = re.compile(r"[^\W_\u3400-\u9fff]")  # a letter or digit of a spaced script


def lead(sentence: str, first_limit: int, limit: int) -> list[str]:
    """The first sentence of a stream, its first piece short: the first clause, or the first words
    up to ``first_limit`` characters, so the first audio is made in a fraction of the time a whole
    sentence takes; the rest at ``limit``. A first word longer than ``first_limit`` is not cut.

    Chinese says in one character what a spaced script says in about three: its limit is a third.
    But Mandarin cut between words inside a clause is misheard (Whisper's character error rate on
    Kokoro's best voice: 0.076 cut, 0.059 whole, ``bench voices-quality``'s sentences), so a
    Chinese first clause up to ``first_limit`` characters stays whole, and only a longer one is cut."""
    whole = sentence.strip()
    first_limit = min(first_limit, limit)
    if _HAN.search(whole):
        clause = _CLAUSE_END.split(whole, maxsplit=1)[0]
        if clause == whole and len(whole) <= first_limit:
            return fit(whole, limit)
        if len(clause) <= first_limit:
            return [clause, *fit(whole[len(clause) :].strip(), limit)]
        first_limit = max(first_limit // 3, 4)
    if len(whole) <= first_limit:
        return fit(sentence, limit)
    head = fit(whole, first_limit)[0]
    rest = whole[len(head) :]
    cut_in_a_word = _WORD_EDGE.match(head[-1:]) and _WORD_EDGE.match(rest[:1])
    cut_in_a_mark = any(mark.start() < len(head) < mark.end() for mark in MARKUP.finditer(whole))
    if not whole.startswith(head) or cut_in_a_word or cut_in_a_mark or not is_speakable(rest):
        return fit(sentence, limit)
    return [head, *fit(rest.strip(), limit)]


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
