"""Books as chapters: found in text, Markdown and EPUB; put back together with chapter marks."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from tests.support.signals import voice_like
from voxserve.audio.pcm import wav_bytes
from voxserve.batch.book import (
    MAX_BOOK_BYTES,
    BookInfo,
    Chapter,
    combine,
    cover_type,
    index,
    read_book,
    split_chapters,
    tag,
)


def test_chapters_in_plain_text_in_english_and_chinese() -> None:
    text = (
        "A preface.\n\nChapter 1\nIt began.\n\nCHAPTER II: Later\nIt went on.\n"
        "第三章 结局\n故事结束了。\n第4回\n又一回。"
    )
    chapters, title = split_chapters(text)
    assert title is None
    assert [(c.number, c.title) for c in chapters] == [
        (1, "Opening"),
        (2, "Chapter 1"),
        (3, "CHAPTER II: Later"),
        (4, "第三章 结局"),
        (5, "第4回"),
    ]
    assert chapters[1].text == "Chapter 1\nIt began." and chapters[1].id == "chapter002"


def test_markdown_headings_and_markup() -> None:
    text = "# Title\n\nSome **bold** and a [link](http://x).\n\n# Part two\n\n> quoted _words_\n"
    chapters, title = split_chapters(text, markdown=True)
    assert title is None, "two # headings: chapters, not a title"
    assert [c.title for c in chapters] == ["Title", "Part two"]
    assert chapters[0].text == "Title\n\nSome bold and a link." and "quoted words" in chapters[1].text
    assert [c.title for c in split_chapters("# not a heading in plain text\nbody")[0]] == ["Opening"]


def test_a_lone_h1_over_chapters_is_the_books_title_not_a_chapter() -> None:
    text = "# The Tale\n\nIt opens.\n\n## Chapter One\n\nThe wind rose.\n\n## Chapter Two\n\nIt ended.\n"
    chapters, title = split_chapters(text, markdown=True)
    assert title == "The Tale"
    assert [c.title for c in chapters] == ["Opening", "Chapter One", "Chapter Two"]
    assert chapters[0].text == "The Tale.\n\nIt opens.", "the title is read first"
    bare, _ = split_chapters("# The Tale\n\n## One\n\nWords.\n", markdown=True)
    assert [c.title for c in bare] == ["One"], "a title alone is no chapter"
    assert bare[0].text == "The Tale.\n\nOne\n\nWords.", "but it is still read first"


CONTAINER = (
    '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    '<rootfiles><rootfile full-path="OEBPS/content.opf"/></rootfiles></container>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>"
    + CONTAINER.replace("<rootfiles>", "<rootfiles>&lol9;")
)


COVER = b"\x89PNG\r\n\x1a\n" + bytes(64)


def _epub(path: Path, container: str = CONTAINER, chapter: bytes = b"") -> Path:
    opf = """<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">
      <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>A  Tale</dc:title>
      <dc:creator>Ann Author</dc:creator><dc:date>1999-05-01</dc:date></metadata>
      <manifest><item id="cover" href="cover.xhtml"/><item id="title" href="title.xhtml"/>
      <item id="c2" href="text/two.xhtml"/><item id="art" href="c.png" properties="cover-image"/>
      <item id="c1" href="text/one.xhtml"/></manifest>
      <spine><itemref idref="cover"/><itemref idref="title"/><itemref idref="c1"/><itemref idref="c2"/>
      </spine></package>"""
    page = (
        "<html><head><title>t</title><style>p {{}}</style></head><body><h1>{0}</h1><p>{1}</p></body></html>"
    )
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", container)
        book.writestr("OEBPS/content.opf", opf)
        book.writestr("OEBPS/cover.xhtml", "<html><body><img src='c.png'/></body></html>")
        book.writestr("OEBPS/c.png", COVER)
        book.writestr("OEBPS/title.xhtml", "<html><body><h1>A Tale</h1><p>Ann Author</p></body></html>")
        book.writestr("OEBPS/text/one.xhtml", page.format("The Start", "First words."))
        two = chapter or page.format("The End", "Last words.").encode()
        book.writestr("OEBPS/text/two.xhtml", two, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return path


@pytest.mark.parametrize(
    ("container", "chapter", "words"),
    [
        (LAUGHS, b"", "META-INF/container.xml is not plain XML"),
        (CONTAINER.replace("rootfile ", "nothing "), b"", "names no rootfile"),
        (
            CONTAINER,
            b"<p>" + b" " * (MAX_BOOK_BYTES + 1),
            "more than 64 MiB of text (at OEBPS/text/two.xhtml)",
        ),
    ],
    ids=["billion laughs", "no rootfile", "64 MiB chapter"],
)
def test_a_hostile_epub_is_refused_in_one_line_before_it_is_in_memory(
    tmp_path: Path, container: str, chapter: bytes, words: str
) -> None:
    path = _epub(tmp_path / "bomb.epub", container, chapter)
    assert path.stat().st_size < 2**20, "small on disk"
    with pytest.raises(ValueError, match=re.escape(words)):
        read_book(path)


def test_an_epub_is_read_in_spine_order_with_its_metadata(tmp_path: Path) -> None:
    chapters, info = read_book(_epub(tmp_path / "book.epub"))
    titles = [(c.number, c.title) for c in chapters]
    assert titles == [(1, "The Start"), (2, "The End")], (
        "the cover says nothing, the title page is no chapter"
    )
    assert chapters[0].text == "The Start\nFirst words."
    assert info == BookInfo(title="A Tale", author="Ann Author", year="1999", cover=COVER)
    given = BookInfo(title="Mine", narrator="Ned").over(info)
    assert (given.title, given.author, given.narrator, given.year) == ("Mine", "Ann Author", "Ned", "1999")


@pytest.mark.parametrize("suffix", [".m4b", ".mp3"])
def test_the_book_is_tagged_with_its_metadata_and_cover(tmp_path: Path, suffix: str) -> None:
    parts = []
    for number in (1, 2):
        path = tmp_path / f"chapter{number:03d}.wav"
        path.write_bytes(wav_bytes(voice_like(1.0, 24000), 24000))
        parts.append((Chapter(number, f"Part {number}", "x"), path, 1.0))
    target = tmp_path / f"book{suffix}"
    combine(parts, target)
    tag(target, BookInfo("The Tale", "Ann Author", "Ned Narrator", "2026", COVER))
    with av.open(str(target)) as book:
        marks = [m["metadata"]["title"] for m in book.chapters()]
        tags = {**book.metadata, **book.streams.audio[0].metadata}
        pictures = [s for s in book.streams if s.type == "video"]
    assert marks == ["Part 1", "Part 2"], "the marks survive the tags"
    assert tags["title"] == "The Tale" and tags["album"] == "The Tale" and tags["artist"] == "Ann Author"
    assert tags["composer"] == "Ned Narrator" and tags["date"].startswith("2026")
    assert pictures, "the cover is an attached picture"
    if suffix == ".m4b":
        covers = MP4(target).tags["covr"]  # type: ignore[index]
        assert bytes(covers[0]) == COVER
    else:
        assert ID3(target).getall("APIC")[0].data == COVER
    with pytest.raises(ValueError, match="not a JPEG or PNG"):
        cover_type(b"GIF89a")


@pytest.mark.parametrize("suffix", [".m4b", ".mp3"])
def test_the_combined_book_has_a_mark_per_chapter(tmp_path: Path, suffix: str) -> None:
    parts = []
    for number, seconds in ((1, 1.5), (2, 2.0), (3, 1.0)):
        path = tmp_path / f"chapter{number:03d}.wav"
        path.write_bytes(wav_bytes(voice_like(seconds, 22050), 22050))
        parts.append((Chapter(number, f"Part {number}", "x"), path, seconds))
    target = tmp_path / f"book{suffix}"
    combine(parts, target)
    with av.open(str(target)) as book:
        marks = [(m["metadata"]["title"], float(m["start"] * (m["time_base"] or 1))) for m in book.chapters()]
        samples = np.concatenate([frame.to_ndarray()[0] for frame in book.decode(audio=0)])
    assert [title for title, _ in marks] == ["Part 1", "Part 2", "Part 3"]
    assert [round(start, 2) for _, start in marks] == [0.0, 1.5, 3.5]
    assert samples.size / 24000 == pytest.approx(4.5, abs=0.1) and np.abs(samples).max() > 0.05
    listing, cue = index(parts, target.name)
    assert [entry["start"] for entry in listing["chapters"]] == [0.0, 1.5, 3.5]
    assert 'TITLE "Part 2"' in cue and "INDEX 01 00:01:38" in cue  # 1.5 s: 1 second, 37.5 frames of 75
    assert json.dumps(listing)


def test_an_epubs_hrefs_are_resolved_and_a_bad_cover_is_left_out(tmp_path: Path) -> None:
    opf = """<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">
      <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>My  Book\u202e</dc:title></metadata>
      <manifest><item id="art" href="../images/my%20cover.png" properties="cover-image"/>
      <item id="bad" properties="cover-image"/><item id="t" href="text/title%20page.xhtml"/>
      <item id="c1" href="text/one.xhtml"/></manifest>
      <spine><itemref idref="t"/><itemref idref="c1"/></spine></package>"""
    path = tmp_path / "book.epub"
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("META-INF/container.xml", CONTAINER)
        book.writestr("OEBPS/content.opf", opf)
        book.writestr("images/my cover.png", COVER)
        book.writestr("OEBPS/text/title page.xhtml", "<html><body><h1>My  Book</h1></body></html>")
        book.writestr("OEBPS/text/one.xhtml", "<html><body><h1>One\nTwo</h1><p>Words.</p></body></html>")
    chapters, info = read_book(path)
    assert info.title == "My Book" and info.cover == COVER, "normalized, unquoted, one line"
    assert [c.title for c in chapters] == ["One Two"], "the title page is no chapter; a title is one line"
    broken = opf.replace("../images/my%20cover.png", "missing.png")
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("META-INF/container.xml", CONTAINER)
        book.writestr("OEBPS/content.opf", broken)
        book.writestr("OEBPS/text/title page.xhtml", "<html><body><h1>My Book</h1></body></html>")
        book.writestr("OEBPS/text/one.xhtml", "<p>Words.</p>")
    chapters, info = read_book(path)
    assert info.cover is None and len(chapters) == 1, "a cover that is not there is left out"
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("META-INF/container.xml", CONTAINER)
        book.writestr("OEBPS/content.opf", opf.replace('<itemref idref="t"/>', '<itemref idref="nope"/>'))
    with pytest.raises(ValueError, match="the spine names 'nope', which the manifest does not have"):
        read_book(path)
