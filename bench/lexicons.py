"""How long reading lexicons into a text takes, in the worst shapes a key can make and in a
realistic one: 8 lexicons (the most a request uses) of 2,000 entries (the most one holds).

- hostile: entries of 100 characters that share their first 91 (``aaa…z0<17>``), against a text
  of 4,096 ``a``: every position is a candidate for every length;
- realistic: 16,000 eight-letter words, against 4,096 characters of those words;
- Chinese: 16,000 entries of 1 to 100 characters over 2,000 common characters, against 4,096 of them;
- a book: the realistic lexicons against 1,000,000 characters (a job's most).

Each is the time to index the entries (once per set of lexicons; kept after) and to read them in.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

from voxserve.voices.lexicons import Entry, Lexicon, Rewriter

LEXICONS, ENTRIES = 8, 2000


@dataclass
class Timing:
    case: str
    chars: int
    entries: int
    index_ms: float
    read_ms: float
    hits: int


def _lexicons(entries: Callable[[int], list[Entry]]) -> tuple[Lexicon, ...]:
    return tuple(Lexicon(f"lx_{k:016x}", f"bench{k}", tuple(entries(k))) for k in range(LEXICONS))


def _time(case: str, lexicons: tuple[Lexicon, ...], text: str, language: str) -> Timing:
    started = time.perf_counter()
    reader = Rewriter(lexicons)
    indexed = time.perf_counter()
    read = reader.apply(text, language, 2 * len(text) + 1000)
    done = time.perf_counter()
    hits = sum(read[1].values()) if read else 0
    count = sum(len(lexicon.entries) for lexicon in lexicons)
    return Timing(case, len(text), count, (indexed - started) * 1000, (done - indexed) * 1000, hits)


def timings() -> list[Timing]:
    rng = random.Random(7)
    hostile = _lexicons(lambda k: [Entry(text="a" * 91 + f"z{k}<{i}>", say="b") for i in range(ENTRIES)])
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(8)) for _ in range(LEXICONS * ENTRIES)]
    realistic = _lexicons(
        lambda k: [Entry(text=word, say=word.upper()) for word in words[k * ENTRIES : (k + 1) * ENTRIES]]
    )
    common = [chr(0x4E00 + i) for i in range(2000)]
    chinese = _lexicons(
        lambda k: [
            Entry(text="".join(rng.choice(common) for _ in range(1 + i % 100)), say="[h][ǎo]")
            for i in range(ENTRIES)
        ]
    )
    prose = " ".join(rng.choice(words) for _ in range(460))[:4096]
    book = " ".join(rng.choice(words) + rng.choice([".", "", "", ","]) for _ in range(112_000))[:1_000_000]
    return [
        _time("hostile", hostile, "a" * 4096, "en"),
        _time("realistic", realistic, prose, "en"),
        _time("Chinese", chinese, "".join(rng.choice(common) for _ in range(4096)), "zh"),
        _time("a book", realistic, book, "en"),
    ]
