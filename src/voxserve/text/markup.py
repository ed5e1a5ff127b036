"""Pronunciation and pause markup inside the input text.

The inline forms (the pinyin and ARPAbet marks CosyVoice users write, plus a pause and raw IPA):

- ``[h][ǎo]``: pinyin, an initial and a final with its tone (a mark or a
  digit), read in place of the character it stands for;
- ``[M][AY0][N][UW1][T]``: ARPAbet, a run of phonemes read as one word;
- ``[pause:0.5s]`` or ``[pause:500ms]``: silence, up to 10 s;
- ``[ipa:təˈmɑːtoʊ]``: raw IPA.

An SSML subset is turned into these forms first: ``<speak>``, ``<break
time="500ms"/>`` (or ``strength``), ``<sub alias="…">``, ``<say-as
interpret-as="characters|spell-out|digits">``, ``<phoneme alphabet="ipa|
x-arpabet|pinyin" ph="…">``, ``<prosody rate>`` (pitch is not applied inside
a request), and Azure's ``<voice name="…">`` and ``<mstts:express-as
style="…">``, which :func:`ssml_passages` keeps apart as passages read by
their own voice, emotion and rate. Malformed SSML is a 400 that says where.

Engines that understand pinyin and ARPAbet marks (CosyVoice) get them as
they are; the embedded engine turns them into its own phonemes; other
engines get the text without them and say so in ``X-Voxserve-Ignored``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

from voxserve.errors import InvalidRequest

MAX_PAUSE = 10.0
MAX_SSML_DEPTH = 32  # elements inside elements; speech markup never needs more
PAUSE = re.compile(r"\[pause:(\d+(?:\.\d+)?)(ms|s)\]", re.IGNORECASE)
IPA = re.compile(r"\[ipa:([^\[\]]{1,200})\]")
BRACKETS = re.compile(r"(?:\[[A-Za-z\u00c0-\u024f]{1,6}[0-5]?\])+")
_TOKEN = re.compile(r"\[([^\[\]]+)\]")
ANY_MARK = re.compile(f"{PAUSE.pattern}|{IPA.pattern}|{BRACKETS.pattern}", re.IGNORECASE)

ARPABET_IPA = {
    "AA": "ɑ",
    "AE": "æ",
    "AH": "ʌ",
    "AO": "ɔ",
    "AW": "aʊ",
    "AY": "aɪ",
    "EH": "ɛ",
    "ER": "ɜɹ",
    "EY": "eɪ",
    "IH": "ɪ",
    "IY": "i",
    "OW": "oʊ",
    "OY": "ɔɪ",
    "UH": "ʊ",
    "UW": "u",
    "B": "b",
    "CH": "ʧ",
    "D": "d",
    "DH": "ð",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "ʤ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
}
_TONE_MARKS = {
    **{c: ("a", t) for t, c in enumerate("āáǎà", 1)},
    **{c: ("e", t) for t, c in enumerate("ēéěè", 1)},
    **{c: ("i", t) for t, c in enumerate("īíǐì", 1)},
    **{c: ("o", t) for t, c in enumerate("ōóǒò", 1)},
    **{c: ("u", t) for t, c in enumerate("ūúǔù", 1)},
    **{c: ("ü", t) for t, c in enumerate("ǖǘǚǜ", 1)},
}
_BREAK_STRENGTH = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.0}


@dataclass(frozen=True)
class Mark:
    """One piece of marked-up text: plain text, or a pronunciation in one alphabet."""

    kind: str  # "text", "pinyin" (numbered syllables), "arpabet", "ipa"
    value: str


def _seconds(amount: str, unit: str) -> float:
    seconds = float(amount) / (1000 if unit.lower() == "ms" else 1)
    if seconds > MAX_PAUSE:
        raise InvalidRequest(f"a pause is {seconds:g} s; the longest is {MAX_PAUSE:g} s", param="input")
    return seconds


def split_pauses(text: str) -> Iterator[tuple[str, float | None]]:
    """(text, the pause after it in seconds, or None where no pause mark ends it)."""
    position = 0
    for match in PAUSE.finditer(text):
        yield text[position : match.start()], _seconds(match.group(1), match.group(2))
        position = match.end()
    yield text[position:], None


def _numbered(syllable: str) -> str:
    """``hǎo`` → ``hao3``; ``hao3`` stays."""
    tone = ""
    plain = []
    for char in syllable:
        base, number = _TONE_MARKS.get(char, (char, 0))
        plain.append(base)
        tone = str(number) if number else tone
    return "".join(plain).lower() + tone


def marks(text: str) -> Iterator[Mark]:
    """The text split into plain runs and pronunciation marks (pauses are handled before this)."""
    position = 0
    for match in ANY_MARK.finditer(text):
        if match.start() > position:
            yield Mark("text", text[position : match.start()])
        position = match.end()
        found = match.group(0)
        if PAUSE.fullmatch(found):
            continue
        ipa = IPA.fullmatch(found)
        if ipa:
            yield Mark("ipa", ipa.group(1))
            continue
        tokens = _TOKEN.findall(found)
        if all(re.fullmatch(r"[A-Z]{1,2}[0-2]?", token) for token in tokens) and all(
            token.rstrip("012") in ARPABET_IPA for token in tokens
        ):
            yield Mark("arpabet", " ".join(tokens))
        else:
            yield from _pinyin(tokens) or [Mark("text", found)]
    if position < len(text):
        yield Mark("text", text[position:])


_SYLLABLE = re.compile(r"^(zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?[iuüv]?[aoeêiuüv]{1,2}(ng|n|r)?[1-5]$")


@lru_cache(maxsize=4096)
def is_mandarin_syllable(numbered: str) -> bool:
    """Whether a toned syllable (``hao3``) is one Mandarin has: the G2P's own table decides.

    A shape can pass :data:`_SYLLABLE` and still be no syllable (``qüng3``);
    the embedded engine's G2P would then fail in the middle of a stream.
    """
    from misaki.transcription import pinyin_to_ipa  # its table loads in ~0.2 s: only when marks appear

    try:
        pinyin_to_ipa(numbered)
    except (ValueError, KeyError, IndexError):
        return False
    return True


def _pinyin(tokens: list[str]) -> list[Mark] | None:
    """Bracketed pieces joined into syllables, each ending at the piece that carries its tone;
    None when they are not toned pinyin (``[sic]`` in ordinary text stays text).

    Raises InvalidRequest, naming the mark, for a toned syllable Mandarin does not have.
    """
    syllables: list[Mark] = []
    syllable = ""
    for token in tokens:
        syllable += token
        numbered = _numbered(syllable)
        if numbered[-1].isdigit():
            if not _SYLLABLE.match(numbered):
                return None
            if not is_mandarin_syllable(numbered):
                shown = "".join(f"[{t}]" for t in tokens)
                raise InvalidRequest(
                    f"input: the pinyin mark {shown} reads {numbered!r}, which is not a Mandarin syllable",
                    param="input",
                )
            syllables.append(Mark("pinyin", numbered))
            syllable = ""
    return syllables if syllables and not syllable else None


def strip_marks(text: str) -> str:
    """The text without its marks (for language detection, and engines that do not read them)."""
    if not has_marks(text):
        return text
    return "".join(mark.value if mark.kind == "text" else " " for mark in marks(text))


def marked_language(text: str) -> str:
    """The language of a piece whose only words are marks: Mandarin for pinyin, else English."""
    return "zh" if any(mark.kind == "pinyin" for mark in marks(text)) else "en"


def has_pronunciations(text: str) -> bool:
    """Whether the text holds pinyin, ARPAbet or IPA marks (what an engine must read itself)."""
    return "[" in text and any(mark.kind != "text" for mark in marks(text))


def has_marks(text: str) -> bool:
    """Whether the text holds a pause or pronunciation mark (a cheap test first: most text has none)."""
    if "[" not in text:
        return False
    return PAUSE.search(text) is not None or any(mark.kind != "text" for mark in marks(text))


def arpabet_to_ipa(phonemes: str) -> str:
    """``M AY0 N UW1 T`` → ``maɪnˈut``: stress marks go before the stressed vowel."""
    out = []
    for token in phonemes.split():
        stress = token[-1] if token[-1].isdigit() else ""
        symbol = ARPABET_IPA[token.rstrip("012")]
        if token.startswith("AH") and stress == "0":
            symbol = "ə"
        if token.startswith("ER"):
            symbol = "ɚ" if stress == "0" else "ɜɹ"
        out.append({"1": "ˈ", "2": "ˌ"}.get(stress, "") + symbol)
    return "".join(out)


# -- SSML ---------------------------------------------------------------------------------

SSML_TAG = re.compile(
    r"<\s*/?\s*(?:\w+:)?(speak|break|sub|say-as|phoneme|prosody|p|s|voice|express-as)\b", re.IGNORECASE
)
#: SSML prosody rate words, as multiples of the normal rate.
_RATE_WORDS = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}


@dataclass(frozen=True)
class Voicing:
    """Who reads a piece of SSML: a ``<voice name>``, an ``<express-as style>`` (Azure's emotion)
    and a ``<prosody rate>`` (a multiple of the request's speed). All unset: the request's own."""

    voice: str | None = None
    emotion: str | None = None
    rate: float = 1.0


def is_ssml(text: str) -> bool:
    return SSML_TAG.search(text) is not None


def ssml_passages(text: str) -> list[tuple[Voicing, str]]:
    """SSML → (who reads it, its text with inline marks), one per run of text read the same way;
    plain text is one passage read as the request says."""
    if not is_ssml(text):
        return [(Voicing(), text)]
    source = text.strip()
    if not source.lower().startswith("<speak"):
        source = f"<speak>{source}</speak>"
    passages: list[tuple[Voicing, str]] = []
    for voicing, piece in _render(_parse(source), Voicing()):
        if passages and passages[-1][0] == voicing:
            passages[-1] = (voicing, passages[-1][1] + piece)
        else:
            passages.append((voicing, piece))
    spaced = [(voicing, re.sub(r"\s+", " ", piece).strip()) for voicing, piece in passages]
    return [(voicing, piece) for voicing, piece in spaced if piece]


def _parse(source: str) -> ElementTree.Element:
    """The SSML's root, refused (400) past :data:`MAX_SSML_DEPTH` levels, so that rendering,
    which recurses once per level, stays bounded whatever the input."""
    parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(
        events=("start", "end")
    )
    depth = 0
    root: ElementTree.Element | None = None
    try:
        parser.feed(source)
        parser.close()
        for event, element in parser.read_events():  # type: ignore[misc]  # typeshed: a union of tuples
            assert isinstance(element, ElementTree.Element)
            depth += 1 if event == "start" else -1
            root = root if root is not None else element
            if depth > MAX_SSML_DEPTH:
                raise InvalidRequest(
                    f"input: SSML is nested more than {MAX_SSML_DEPTH} elements deep", param="input"
                )
    except ElementTree.ParseError as exc:
        raise InvalidRequest(f"input is not well-formed SSML: {exc}", param="input") from exc
    assert root is not None, "a document that parsed has a root"
    return root


def _render(element: ElementTree.Element, voicing: Voicing) -> Iterator[tuple[Voicing, str]]:
    tag = element.tag.split("}")[-1].lower()
    inner = "".join(element.itertext())
    if tag == "break":
        yield voicing, _break(element)
    elif tag == "sub":
        yield voicing, element.get("alias", inner)
    elif tag == "say-as":
        yield voicing, _say_as(element.get("interpret-as", ""), inner)
    elif tag == "phoneme":
        yield voicing, _phoneme(element.get("alphabet", "ipa"), element.get("ph", ""), inner)
    else:
        voicing = _inside(tag, element, voicing)
        yield voicing, element.text or ""
        for child in element:
            yield from _render(child, voicing)
            yield voicing, child.tail or ""
        if tag in ("p", "s"):
            yield voicing, " [pause:0.4s] " if tag == "p" else " "


def _inside(tag: str, element: ElementTree.Element, voicing: Voicing) -> Voicing:
    """Who reads what is inside an element that holds text."""
    if tag == "voice":
        name = (element.get("name") or "").strip()
        if not name:
            raise InvalidRequest("SSML <voice> needs a name attribute", param="input")
        return replace(voicing, voice=name)
    if tag == "express-as":
        style = (element.get("style") or "").strip()
        return replace(voicing, emotion=style) if style else voicing
    if tag == "prosody":
        rate = element.get("rate")
        return replace(voicing, rate=voicing.rate * _rate(rate)) if rate else voicing
    if tag not in ("speak", "p", "s"):
        raise InvalidRequest(f"SSML element <{tag}> is not supported", param="input")
    return voicing


def _rate(value: str) -> float:
    """A prosody rate: a word (``slow``), a percentage change (``+20%``) or a multiple (``1.2``)."""
    value = value.strip().lower()
    if value in _RATE_WORDS:
        return _RATE_WORDS[value]
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)(%?)", value)
    if match is None:
        raise InvalidRequest(
            f"SSML prosody rate {value!r} is not a word ({', '.join(_RATE_WORDS)}), "
            "a change like '+20%' or a multiple like '1.2'",
            param="input",
        )
    number = float(match.group(1))
    rate = 1 + number / 100 if match.group(2) else number
    if not 0.25 <= rate <= 4.0:
        raise InvalidRequest(f"SSML prosody rate {value!r} is outside 0.25 to 4 times", param="input")
    return rate


def _break(element: ElementTree.Element) -> str:
    time = element.get("time")
    if time:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", time, re.IGNORECASE)
        if match is None:
            raise InvalidRequest(f"SSML break time {time!r} is not like '500ms' or '1.5s'", param="input")
        return f" [pause:{_seconds(match.group(1), match.group(2)):g}s] "
    strength = element.get("strength", "medium")
    if strength not in _BREAK_STRENGTH:
        raise InvalidRequest(
            f"SSML break strength {strength!r} is not one of {', '.join(_BREAK_STRENGTH)}", param="input"
        )
    return f" [pause:{_BREAK_STRENGTH[strength]:g}s] "


def _say_as(interpret_as: str, text: str) -> str:
    if interpret_as in ("characters", "spell-out", "verbatim"):
        return " ".join(char for char in text if not char.isspace())
    if interpret_as in ("digits", "telephone"):
        return " ".join(char for char in text if char.isdigit())
    return text  # cardinal, date, ...: the normalizer reads these


def _phoneme(alphabet: str, ph: str, text: str) -> str:
    alphabet = alphabet.lower()
    if not ph.strip():
        return text
    if alphabet == "ipa":
        return f"[ipa:{ph.strip()}]"
    if alphabet in ("x-arpabet", "arpabet", "cmu"):
        return "".join(f"[{token.upper()}]" for token in ph.split())
    if alphabet in ("pinyin", "x-pinyin"):
        return "".join(f"[{syllable}]" for syllable in ph.split())
    raise InvalidRequest(f"SSML phoneme alphabet {alphabet!r} is not ipa, x-arpabet or pinyin", param="input")
