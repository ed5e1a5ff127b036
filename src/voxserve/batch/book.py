"""A book as chapters: read from plain text, Markdown or EPUB, and put back together as one file.

Chapters are found where a reader sees them: Markdown headings (``#``, ``##``), lines such as
"Chapter 12" or "CHAPTER IV", and 第十二章 / 第三回 / 第5节; in an EPUB, the spine's documents in
reading order, titled by their first heading. Text before the first chapter is a chapter of its own
("Opening"). A Markdown book's one ``#`` heading over ``##`` chapters is its title, not a chapter.
Each chapter is one batch item; the combined file carries the chapter marks, and the book's title,
author, narrator, year and cover (given, or from the EPUB's metadata) as its tags.
"""

from __future__ import annotations

import html.parser
import json
import posixpath
import re
import unicodedata
import zipfile
from dataclasses import astuple, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.etree.ElementTree import Element, ParseError

import av
import av.audio.stream
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from mutagen.id3 import APIC, ID3, TALB, TCOM, TCON, TDRC, TIT2, TPE1, TPE2
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm

from voxserve.captions import file_name, shifted_entry
from voxserve.client.files import atomic_file, read_at_most

if TYPE_CHECKING:  # a TypedDict of PyAV's stubs only
    from av.container.core import Chapter as AvChapter

HEADING = re.compile(
    r"^(?:(?P<level>#{1,2})\s+(?P<md>.+?)\s*#*"
    r"|(?P<en>(?:chapter|CHAPTER|Chapter)\s+(?:\d+|[IVXLCDM]+|[A-Za-z-]+)\b.*)"
    r"|(?P<zh>第[一二三四五六七八九十百千零〇两\d]+[章回节卷].*))$"
)
MARKDOWN_NOISE = re.compile(r"\[([^\]]*)\]\([^)]*\)|[*_`]{1,3}|^>\s?", re.MULTILINE)
RATE = 24000  # the combined file's rate: every embedded engine's, and plenty for speech
#: The most a book's text may take once read (an EPUB decompressed): twenty long novels. A
#: two-megabyte EPUB can hold gigabytes of text; it is refused before it is in memory.
MAX_BOOK_BYTES = 64 * 2**20
#: The largest cover image taken (a cover is a picture, not a payload).
MAX_COVER_BYTES = 10 * 2**20
COVER_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


@dataclass(frozen=True)
class BookInfo:
    """What a book says about itself: written into the combined file's tags."""

    title: str | None = None
    author: str | None = None
    narrator: str | None = None
    year: str | None = None
    cover: bytes | None = None  # JPEG or PNG

    def over(self, found: BookInfo) -> BookInfo:
        """These values, and ``found``'s where these have none (options over the EPUB's)."""
        return BookInfo(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(astuple(self), astuple(found), strict=True)
            )
        )


def cover_type(data: bytes) -> str:
    """The cover's media type, from its first bytes; a ValueError for anything but JPEG or PNG."""
    for magic, media_type in COVER_TYPES.items():
        if data.startswith(magic):
            return media_type
    raise ValueError("the cover is not a JPEG or PNG image")


def read_cover(path: Path) -> bytes:
    """A cover image from a file, checked (JPEG or PNG, at most :data:`MAX_COVER_BYTES`)."""
    data = read_at_most(path, MAX_COVER_BYTES, f"the cover is larger than {MAX_COVER_BYTES // 2**20} MiB")
    cover_type(data)
    return data


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    text: str  # what is read, its title first

    @property
    def id(self) -> str:
        return f"chapter{self.number:03d}"


def split_chapters(text: str, markdown: bool = False) -> tuple[list[Chapter], str | None]:
    """Chapters of a text, each with its heading as its title and first line, and the book's title:
    in Markdown, a lone ``#`` heading first, over ``##`` chapters. The title is read first: at the
    start of the text under it (the "Opening"), or of the first chapter when there is none."""
    lines = text.splitlines()
    matches = [HEADING.match(line.strip()) for line in lines]
    headings = [m for m in matches if m and (m.group("md") is None or markdown)]
    levels = [m.group("level") for m in headings]
    book_title = None
    if markdown and levels and levels[0] == "#" and levels.count("#") == 1 and "##" in levels:
        book_title = headings[0].group("md").strip()
    chapters: list[tuple[str, list[str]]] = [("Opening", [])]
    for line, found in zip(lines, matches, strict=True):
        if found and book_title is not None and found.group("level") == "#":
            chapters[-1][1].append(book_title + ".")
        elif found and (found.group("md") is None or markdown):
            title = (found.group("md") or found.group("en") or found.group("zh")).strip()
            chapters.append((title, [title]))
        else:
            chapters[-1][1].append(MARKDOWN_NOISE.sub(r"\1", line) if markdown else line)
    made = [(title, "\n".join(lines).strip()) for title, lines in chapters]
    kept = [
        (title, body)
        for title, body in made
        if body and (title != "Opening" or body.strip() not in ("", f"{book_title}."))
    ]
    if book_title is not None and kept and kept[0][0] != "Opening":
        kept[0] = (kept[0][0], f"{book_title}.\n\n{kept[0][1]}")
    return [Chapter(number, title, body) for number, (title, body) in enumerate(kept, 1)], book_title


class _Text(html.parser.HTMLParser):
    """The readable text of an XHTML document, and its first heading."""

    BLOCKS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "section", "tr"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.heading: str | None = None
        self._in: list[str] = []
        self._heading_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in.append(tag)
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"h1", "h2", "h3"} and self.heading is None and self._heading_parts:
            self.heading = "".join(self._heading_parts).strip()
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if any(tag in {"script", "style", "head"} for tag in self._in):
            return
        self.parts.append(data)
        if self.heading is None and any(tag in {"h1", "h2", "h3"} for tag in self._in):
            self._heading_parts.append(data)


class _Budget:
    """What is left of :data:`MAX_BOOK_BYTES`: each member is read only up to it, never whole."""

    def __init__(self, book: zipfile.ZipFile, limit: int = MAX_BOOK_BYTES) -> None:
        self.book = book
        self.limit = self.left = limit

    def read(self, name: str) -> bytes:
        with self.book.open(name) as member:
            data = member.read(self.left + 1)
        if len(data) > self.left:
            raise ValueError(
                f"the book decompresses to more than {self.limit // 2**20} MiB of text "
                f"(at {name}), the most a book may hold"
            )
        self.left -= len(data)
        return data

    def xml(self, name: str) -> Element:
        """A member's XML; DTDs and entities are refused (a few hundred bytes of them can expand to
        gigabytes)."""
        try:
            return fromstring(self.read(name), forbid_dtd=True)
        except (ParseError, DefusedXmlException) as exc:
            raise ValueError(f"{name} is not plain XML ({exc})") from exc


def one_line(text: str) -> str:
    """Text for a tag, a title or a cue sheet: on one line, without control or format characters
    (a heading's line break would break a cue sheet's line; a bidi override would mislead)."""
    kept = "".join(char for char in text if unicodedata.category(char) not in ("Cc", "Cf") or char in "\t\n")
    return " ".join(kept.split())


def _dc(opf: Element, name: str) -> str | None:
    """The first Dublin Core ``name`` (title, creator, date) of an OPF package, if it has one."""
    for element in opf.iter():
        if element.tag.endswith(f"}}{name}") and one_line(element.text or ""):
            return one_line(element.text or "")
    return None


def _member(base: str, href: str) -> str:
    """The zip member an OPF href names (relative to the OPF's folder, percent-encoded)."""
    return posixpath.normpath(posixpath.join(base, unquote(href)))


def _epub_cover(opf: Element, budget: _Budget, base: str) -> bytes | None:
    """The EPUB's cover image: EPUB 3's ``properties="cover-image"``, or EPUB 2's ``<meta
    name="cover">``; None when it has none, or not a JPEG or PNG one."""
    items = [e for e in opf.iter() if e.tag.endswith("}item") and e.attrib.get("href")]
    named = next(
        (
            e.attrib.get("content")
            for e in opf.iter()
            if e.tag.endswith("}meta") and e.attrib.get("name") == "cover"
        ),
        None,
    )
    for item in items:
        if "cover-image" in item.attrib.get("properties", "").split() or (
            named and item.attrib.get("id") == named
        ):
            try:  # the cover is optional: one that cannot be read is left out, the book is still made
                data = budget.read(_member(base, item.attrib["href"]))
            except KeyError:
                continue
            if len(data) <= MAX_COVER_BYTES and any(data.startswith(magic) for magic in COVER_TYPES):
                return data
    return None


def read_epub(path: Path) -> tuple[list[Chapter], BookInfo]:
    """The spine's documents in reading order, each a chapter titled by its first heading, and the
    book's metadata (title, first creator, year, cover). A document that holds only the book's
    title (a title page) is not a chapter."""
    with zipfile.ZipFile(path) as book:
        budget = _Budget(book)
        container = budget.xml("META-INF/container.xml")
        rootfiles = [e.attrib.get("full-path") for e in container.iter() if e.tag.endswith("rootfile")]
        rootfile = rootfiles[0] if rootfiles else None
        if not rootfile:
            raise ValueError("META-INF/container.xml names no rootfile: this is not an EPUB")
        opf = budget.xml(rootfile)
        base = posixpath.dirname(rootfile)
        items = {
            e.attrib["id"]: e.attrib["href"]
            for e in opf.iter()
            if e.tag.endswith("}item") and "id" in e.attrib and "href" in e.attrib
        }
        order = [e.attrib.get("idref", "") for e in opf.iter() if e.tag.endswith("}itemref")]
        missing = next((idref for idref in order if idref not in items), None)
        if missing is not None:
            raise ValueError(f"the spine names {missing!r}, which the manifest does not have")
        date = _dc(opf, "date")
        info = BookInfo(
            title=_dc(opf, "title"),
            author=_dc(opf, "creator"),
            year=date[:4] if date and date[:4].isdigit() else None,
            cover=_epub_cover(opf, budget, base),
        )
        chapters: list[Chapter] = []
        for idref in order:
            document = _Text()
            document.feed(budget.read(_member(base, items[idref])).decode("utf-8", "replace"))
            text = re.sub(r"\n\s*\n+", "\n\n", "".join(document.parts)).strip()
            lines = [one_line(line) for line in text.splitlines() if one_line(line)]
            if lines and not (
                info.title and lines[0] == info.title and set(lines) <= {info.title, info.author}
            ):
                title = one_line(document.heading or lines[0])[:80]
                chapters.append(Chapter(len(chapters) + 1, title, text))
    return chapters, info


def read_book(path: Path) -> tuple[list[Chapter], BookInfo]:
    """A book's chapters and what it says about itself (an EPUB's metadata, a Markdown title)."""
    suffix = path.suffix.lower()
    if suffix == ".epub":
        return read_epub(path)
    too_large = f"the book is larger than {MAX_BOOK_BYTES // 2**20} MiB, the most a book may hold"
    data = read_at_most(path, MAX_BOOK_BYTES, too_large)
    chapters, title = split_chapters(data.decode("utf-8"), markdown=suffix in {".md", ".markdown"})
    return chapters, BookInfo(title=title)


def tag(target: Path, info: BookInfo) -> None:
    """The book's title, author, narrator, year and cover into the combined file's tags, as
    audiobook players read them: MP4 atoms in an ``.m4b`` (the narrator as composer, the media kind
    "audiobook"), ID3 frames in an ``.mp3``. The chapter marks stay as they are."""
    title, author, narrator, year = (one_line(text or "") or None for text in astuple(info)[:4])
    clean = BookInfo(title, author, narrator, year, info.cover)
    if target.suffix == ".m4b":
        _tag_mp4(target, clean)
    else:
        _tag_mp3(target, clean)


def _tag_mp4(target: Path, info: BookInfo) -> None:
    book = MP4(target)
    if book.tags is None:
        book.add_tags()
    tags = book.tags
    assert tags is not None
    named = {"\xa9nam": info.title, "\xa9alb": info.title, "\xa9ART": info.author, "aART": info.author}
    named |= {"\xa9wrt": info.narrator, "\xa9day": info.year}
    for atom, value in named.items():
        if value:
            tags[atom] = [value]
    if info.narrator:
        tags["----:com.apple.iTunes:NARRATOR"] = [MP4FreeForm(info.narrator.encode())]
    tags["\xa9gen"] = ["Audiobook"]
    tags["stik"] = [2]  # the media kind: audiobook
    if info.cover:
        kind = MP4Cover.FORMAT_JPEG if cover_type(info.cover) == "image/jpeg" else MP4Cover.FORMAT_PNG
        tags["covr"] = [MP4Cover(info.cover, imageformat=kind)]
    book.save()


def _tag_mp3(target: Path, info: BookInfo) -> None:
    tags = ID3(target)
    frames = [(TIT2, info.title), (TALB, info.title), (TPE1, info.author), (TPE2, info.author)]
    frames += [(TCOM, info.narrator), (TDRC, info.year)]
    for frame, value in frames:
        if value:
            tags.setall(frame.__name__, [frame(encoding=3, text=[value])])
    tags.setall("TCON", [TCON(encoding=3, text=["Audiobook"])])
    if info.cover:
        picture = APIC(encoding=3, mime=cover_type(info.cover), type=3, desc="Cover", data=info.cover)
        tags.setall("APIC", [picture])
    tags.save(target)


def combine(parts: list[tuple[Chapter, Path, float]], target: Path) -> None:
    """Every chapter's audio, in order, as one file with a chapter mark per chapter (``.m4b``: AAC
    in MP4, as audiobook players read; ``.mp3``: ID3 chapters). ``parts``: (chapter, its file, its
    seconds); the marks are set from the seconds before any audio is written."""
    container_format, codec = ("ipod", "aac") if target.suffix == ".m4b" else ("mp3", "libmp3lame")
    with atomic_file(target) as sink:
        output = av.open(sink, "w", format=container_format)
        stream = output.add_stream(codec, rate=RATE, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        marks: list[AvChapter] = []
        start = 0
        for chapter, _, seconds in parts:
            end = start + round(seconds * RATE)
            time_base = Fraction(1, RATE)
            mark: AvChapter = {
                "id": chapter.number,
                "start": start,
                "end": end,
                "time_base": time_base,
                "metadata": {"title": one_line(chapter.title)},
            }
            marks.append(mark)
            start = end
        output.set_chapters(marks)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=RATE)

        def encode(frames: list[av.AudioFrame]) -> None:
            for frame in frames:
                frame.pts = None  # each chapter's file counts from zero: the encoder numbers them on
                output.mux(stream.encode(frame))

        for _, audio, _ in parts:
            with av.open(str(audio)) as source:
                for frame in source.decode(audio=0):
                    encode(resampler.resample(frame))
        encode(resampler.resample(None))
        output.mux(stream.encode(None))
        output.close()


def book_segments(parts: list[tuple[Chapter, Path, float]]) -> list[dict[str, Any]]:
    """Every chapter's segments, moved to where the chapter starts in the combined file."""
    segments: list[dict[str, Any]] = []
    start = 0.0
    for _, audio, seconds in parts:
        captions = audio.with_name(file_name(audio.stem, "json"))
        listed = json.loads(captions.read_text(encoding="utf-8"))["segments"]
        for segment in listed:
            segments.append({**shifted_entry(segment, start), "index": len(segments)})
        start += seconds
    return segments


def index(parts: list[tuple[Chapter, Path, float]], combined: str | None) -> tuple[dict[str, Any], str]:
    """The chapters' places in the combined file, as JSON and as a cue sheet."""
    entries: list[dict[str, Any]] = []
    start = 0.0
    for chapter, audio, seconds in parts:
        entries.append(
            {
                "number": chapter.number,
                "title": chapter.title,
                "file": audio.name,
                "start": round(start, 3),
                "seconds": round(seconds, 3),
            }
        )
        start += seconds
    cue = [f'FILE "{combined or "book"}" {"MP3" if (combined or "").endswith(".mp3") else "MP4"}']
    for entry in entries:
        minutes, seconds = divmod(entry["start"], 60)
        frames = round((seconds % 1) * 75)
        title = one_line(entry["title"]).replace('"', "'")
        cue += [
            f"  TRACK {entry['number']:02d} AUDIO",
            f'    TITLE "{title}"',
            f"    INDEX 01 {int(minutes):02d}:{int(seconds):02d}:{min(frames, 74):02d}",
        ]
    return {"combined": combined, "chapters": entries}, "\n".join(cue) + "\n"
