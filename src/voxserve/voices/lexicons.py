"""Pronunciation lexicons: names, brands and polyphones read one way in every request and job.

A lexicon is a named list of entries, each a written form and what to say
for it: other words ("SQL" → "sequel") or the inline marks the planner reads
(pinyin ``[ch][óng]庆``, ARPAbet ``[K][OW1][Z][IY0]``, ``[ipa:…]``). An entry
matches a whole word (in Chinese and Japanese, where words are not spaced,
any occurrence), without regard to case unless it says so, and only in text
of its language when it names one. Longer forms win over the shorter forms
inside them.

Lexicons are owned like voices: with API keys, a key sees and uses only its
own. A key's lexicons marked ``default`` apply to each of its requests that
names none; a request's ``lexicons`` names the ones it wants instead (``[]``
for none). They are kept in the artifact store under ``lexicons/`` (shared
storage included), a JSON file each; a change is seen by other processes
within :data:`LISTING_SECONDS`.

:class:`Lexicons` blocks on the store: callers run it in a thread (planning does).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voxserve.errors import Conflict, InvalidRequest, NotFound
from voxserve.storage import ArtifactStore
from voxserve.text.markup import ANY_MARK, is_ssml, marks, split_pauses
from voxserve.voices.library import EVERYONE, Viewer, check_name

PREFIX = "lexicons/"
ID = re.compile(r"^lx_[0-9a-f]{16}$")
MAX_ENTRIES = 2000
MAX_LEXICONS = 100  # one owner's
MAX_PER_REQUEST = 8
#: Text once lexicons are read may be at most this many times the input's limit: an entry whose
#: replacement is long cannot turn a short input into a flood.
MAX_GROWTH = 2
#: How long a listing of the store is trusted (changes by other processes are seen after this).
LISTING_SECONDS = 2.0
#: A written form that starts (ends) with a letter or digit of a spaced script matches at a word's
#: edge only; Chinese and Japanese are not spaced, so their forms match anywhere.
_SPACED = re.compile(r"[^\W_\u3040-\u30ff\u3400-\u9fff]")


class LexiconNotFound(NotFound):
    code = "lexicon_not_found"


class Entry(BaseModel):
    """One written form and what to say for it."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=100, description="the written form, as it appears in input")
    say: str = Field(
        min_length=1, max_length=400, description="what to say: words, or pinyin/ARPAbet/IPA marks"
    )
    case_sensitive: bool = Field(default=False, description="match the written form's case exactly")
    language: str | None = Field(default=None, max_length=16, description="only in text of this language")


class LexiconBody(BaseModel):
    """``POST /v1/lexicons`` and ``PUT /v1/lexicons/{id}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    entries: list[Entry] = Field(min_length=1, max_length=MAX_ENTRIES)
    default: bool = Field(default=False, description="apply to every request of its owner that names none")


@dataclass(frozen=True)
class Lexicon:
    id: str
    name: str
    entries: tuple[Entry, ...]
    default: bool = False
    owner: str | None = None
    created: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "default": self.default,
            "owner": self.owner,
            "created": self.created,
            "updated": self.updated,
            "entries": [entry.model_dump(exclude_none=True) for entry in self.entries],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lexicon:
        entries = tuple(Entry.model_validate(entry) for entry in data["entries"])
        return cls(
            data["id"],
            data["name"],
            entries,
            bool(data.get("default")),
            data.get("owner"),
            float(data.get("created", 0)),
            float(data.get("updated", 0)),
        )


def check_entries(entries: Sequence[Entry]) -> None:
    """Entries whose replacement marks are malformed are refused here, not at every request."""
    seen: dict[tuple[str, str | None], int] = {}
    for number, entry in enumerate(entries):
        if is_ssml(entry.say):
            raise InvalidRequest(
                f"entries[{number}].say holds SSML; an entry says words or marks ([h][ǎo], [ipa:…])",
                param=f"entries.{number}.say",
            )
        try:
            list(marks(entry.say))
            list(split_pauses(entry.say))
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"entries[{number}].say: {exc.message}", param=f"entries.{number}.say"
            ) from None
        form = (entry.text if entry.case_sensitive else entry.text.casefold(), entry.language)
        if form in seen:
            raise InvalidRequest(
                f"entries[{number}] repeats the written form {entry.text!r} of entries[{seen[form]}]",
                param=f"entries.{number}.text",
            )
        seen[form] = number


def _checked_name(name: str) -> str:
    """A lexicon's name: a voice's rules, and not shaped like a lexicon's id (it could not be found)."""
    name = check_name(name)
    if ID.match(name):
        raise InvalidRequest(f"name {name!r} is shaped like a lexicon id; choose another", param="name")
    return name


def _check_defaults(body: LexiconBody, others: Sequence[Lexicon]) -> None:
    """An owner's default lexicons all apply to each of its requests: no more than one may name."""
    if body.default and sum(x.default for x in others) >= MAX_PER_REQUEST:
        raise InvalidRequest(
            f"an owner may have at most {MAX_PER_REQUEST} default lexicons, as many as a request may "
            "name; make another one not default first",
            param="default",
        )


class _Table:
    """Strings to find in a text, by their first character and their length. A scan costs, at each
    position, one dictionary lookup per length of the strings starting with that character: no
    regular expression, whose matching of thousands of alternatives holds the interpreter (and so
    the event loop) for seconds."""

    def __init__(self, fold: bool) -> None:
        self.fold = fold
        self._found: dict[str, list[tuple[str, Entry]]] = {}
        self._lengths: dict[str, list[int]] = {}

    def _key(self, text: str) -> str:
        return text.casefold() if self.fold else text

    def add(self, written: str, found: tuple[str, Entry]) -> None:
        self._found.setdefault(self._key(written), []).append(found)
        lengths = self._lengths.setdefault(self._key(written[0])[:1], [])
        if len(written) not in lengths:
            lengths.append(len(written))
            lengths.sort(reverse=True)

    def at(self, text: str, position: int) -> Iterator[tuple[int, list[tuple[str, Entry]]]]:
        """(length, what is written so) for each string found at ``position``, longest first."""
        for length in self._lengths.get(self._key(text[position])[:1], ()):
            piece = text[position : position + length]
            if len(piece) == length and (found := self._found.get(self._key(piece))):
                yield length, found


def _spaced(char: str) -> bool:
    return bool(char) and _SPACED.match(char) is not None


class Rewriter:
    """The entries of some lexicons, indexed once; :meth:`apply` reads them into a text."""

    def __init__(self, lexicons: tuple[Lexicon, ...]) -> None:
        self.lexicons = lexicons
        self._exact, self._folded = _Table(fold=False), _Table(fold=True)
        self._said = _Table(fold=False)  # what entries say: shown as written
        for lexicon in lexicons:
            for entry in lexicon.entries:
                (self._exact if entry.case_sensitive else self._folded).add(entry.text, (lexicon.id, entry))
                self._said.add(entry.say, (lexicon.id, entry))

    def _entry_at(self, text: str, position: int, language: str | None) -> tuple[int, str, Entry] | None:
        """The longest entry written at ``position`` that applies there: at a word's edges (a form
        that starts or ends with a letter of a spaced script: "SQL" is not in "MySQL"), in its
        language."""
        starts_word = not (_spaced(text[position]) and position and _spaced(text[position - 1]))
        found = sorted(
            [*self._exact.at(text, position), *self._folded.at(text, position)], key=lambda f: -f[0]
        )
        for length, entries in found:
            ends_word = not (
                _spaced(text[position + length - 1])
                and _spaced(text[position + length : position + length + 1])
            )
            for lexicon_id, entry in entries:
                if entry.language and language and entry.language.split("-")[0].lower() != language:
                    continue
                if (starts_word or not _spaced(entry.text[0])) and ends_word:
                    return length, lexicon_id, entry
        return None

    def apply(self, text: str, language: str | None, limit: int) -> tuple[str, Counter[str]] | None:
        """``text`` with every entry read as it says (not inside marks already there), and how many
        times each lexicon (by id) was used; None once the result would pass ``limit`` characters
        (it is not made). ``language``: the text's; entries of another are left out."""
        hits: Counter[str] = Counter()
        marks_at = {mark.start(): mark.end() for mark in ANY_MARK.finditer(text)}
        pieces: list[str] = []
        made, position, plain = 0, 0, 0
        while position < len(text):
            if position in marks_at:
                position = marks_at[position]
                continue
            found = self._entry_at(text, position, language)
            if found is None:
                position += 1
                continue
            length, lexicon_id, entry = found
            pieces += [text[plain:position], entry.say]
            made += position - plain + len(entry.say)
            if made > limit:
                return None
            hits[lexicon_id] += 1
            position = plain = position + length
        made += len(text) - plain
        if made > limit:
            return None
        return ("".join(pieces) + text[plain:] if hits else text), hits

    def written(self, text: str) -> str:
        """Read text shown as it was written: each entry's replacement back to its written form
        (captions say "SQL", not "sequel", and keep the characters a pinyin mark stands for)."""
        pieces, position, plain = [], 0, 0
        while position < len(text):
            found = next(self._said.at(text, position), None)
            if found is None:
                position += 1
                continue
            length, [(_, entry), *_] = found
            pieces += [text[plain:position], entry.text]
            position = plain = position + length
        return "".join(pieces) + text[plain:]


@lru_cache(maxsize=64)
def rewriter(lexicons: tuple[Lexicon, ...]) -> Rewriter:
    """The compiled rewriter of some lexicons (as stored: a changed lexicon is another key)."""
    return Rewriter(lexicons)


class Lexicons:
    """The lexicons in the artifact store, owned like voices."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        self._lock = threading.Lock()
        self._listing: tuple[float, list[Lexicon]] | None = None
        #: each lexicon as last read, by the digest of its file: unchanged, it is not checked again
        #: (2,000 entries take milliseconds to validate) and stays the same object (its index is kept)
        self._read: dict[str, tuple[str, Lexicon]] = {}

    def _load(self, lexicon_id: str) -> Lexicon | None:
        data = self.artifacts.get_bytes(f"{PREFIX}{lexicon_id}.json")
        if data is None:
            self._read.pop(lexicon_id, None)
            return None
        digest = hashlib.sha256(data).hexdigest()
        known = self._read.get(lexicon_id)
        if known is not None and known[0] == digest:
            return known[1]
        try:
            lexicon = Lexicon.from_dict(json.loads(data))
        except (ValueError, TypeError, KeyError, ValidationError):
            return None
        self._read[lexicon_id] = (digest, lexicon)
        return lexicon

    def _all(self) -> list[Lexicon]:
        listing = self._listing
        if listing is not None and time.monotonic() - listing[0] < LISTING_SECONDS:
            return listing[1]
        keys = [key for key in self.artifacts.keys(f"{PREFIX}lx_") if key.endswith(".json")]
        found = [lexicon for key in keys if (lexicon := self._load(key[len(PREFIX) : -len(".json")]))]
        found.sort(key=lambda lexicon: lexicon.created)
        self._listing = (time.monotonic(), found)
        return found

    def list(self, viewer: Viewer = EVERYONE) -> list[Lexicon]:
        """The lexicons ``viewer`` may see, oldest first."""
        return [lexicon for lexicon in self._all() if viewer.everyone or lexicon.owner == viewer.owner]

    def get(self, key: str, viewer: Viewer = EVERYONE) -> Lexicon | None:
        """A lexicon by id or name that ``viewer`` may see (by name: its own first)."""
        if ID.match(key):
            lexicon = self._load(key)
            seen = lexicon is not None and (viewer.everyone or lexicon.owner == viewer.owner)
            return lexicon if seen else None
        named = [lexicon for lexicon in self.list(viewer) if lexicon.name == key]
        return next((x for x in named if x.owner == viewer.owner), named[0] if named else None)

    def require(self, key: str, viewer: Viewer = EVERYONE, param: str = "lexicon_id") -> Lexicon:
        lexicon = self.get(key, viewer)
        if lexicon is None:
            raise LexiconNotFound(f"lexicon {key!r} does not exist (GET /v1/lexicons)", param=param)
        return lexicon

    def for_request(self, names: Iterable[str] | None, viewer: Viewer = EVERYONE) -> tuple[Lexicon, ...]:
        """The lexicons a request uses: those it names, or (None) its owner's defaults."""
        if names is None:  # at most MAX_PER_REQUEST are defaults (create and replace see to it)
            defaults = [x for x in self._all() if x.default and x.owner == viewer.owner]
            return tuple(defaults[:MAX_PER_REQUEST])
        return tuple(self.require(name, viewer, "lexicons") for name in dict.fromkeys(names))

    def create(self, body: LexiconBody, owner: str | None) -> Lexicon:
        """A new lexicon; its name is its owner's only."""
        name = _checked_name(body.name)
        check_entries(body.entries)
        with self._lock:
            self._listing = None
            mine = self.list(Viewer(owner, everyone=False))
            holder = next((x for x in mine if x.name == name), None)
            if holder is not None:
                raise Conflict(f"a lexicon named {name!r} already exists ({holder.id})", param="name")
            if len(mine) >= MAX_LEXICONS:
                raise InvalidRequest(f"the most lexicons one owner may keep is {MAX_LEXICONS}", param="name")
            _check_defaults(body, mine)
            now = time.time()
            digest = hashlib.sha256(f"{name}\n{owner or ''}\n{now}".encode()).hexdigest()[:16]
            lexicon = Lexicon(f"lx_{digest}", name, tuple(body.entries), body.default, owner, now, now)
            self._save(lexicon)
        return lexicon

    def replace(self, key: str, body: LexiconBody, viewer: Viewer) -> Lexicon:
        """A lexicon's name, entries and default replaced whole."""
        name = _checked_name(body.name)
        check_entries(body.entries)
        with self._lock:
            self._listing = None
            current = self.require(key, viewer)
            others = [x for x in self.list(Viewer(current.owner, everyone=False)) if x.id != current.id]
            holder = next((x for x in others if x.name == name), None)
            if holder is not None:
                raise Conflict(f"a lexicon named {name!r} already exists ({holder.id})", param="name")
            _check_defaults(body, others)
            lexicon = Lexicon(
                current.id,
                name,
                tuple(body.entries),
                body.default,
                current.owner,
                current.created,
                time.time(),
            )
            self._save(lexicon)
        return lexicon

    def delete(self, key: str, viewer: Viewer) -> Lexicon:
        with self._lock:
            lexicon = self.require(key, viewer)
            self.artifacts.delete(f"{PREFIX}{lexicon.id}.json")
            self._listing = None
        return lexicon

    def _save(self, lexicon: Lexicon) -> None:
        self.artifacts.put_bytes(f"{PREFIX}{lexicon.id}.json", json.dumps(lexicon.to_dict()).encode())
        self._listing = None
