"""Multi-voice text: which passages of the input each voice reads.

Two ways to write it, one result (a list of :class:`Passage`):

- SSML, Azure's shape: ``<voice name="…">`` (a voice, or a name in the request's
  ``voices`` table), ``<mstts:express-as style="…">`` for an emotion,
  ``<prosody rate="…">`` for a speed;
- a script, for people who do not write XML: a line that starts with a name in
  the request's ``voices`` table and a colon (``Alice: Hello.``, ``旁白：夜深了。``)
  is that speaker's; a line with no such name goes on with the speaker of the line
  above it, and after a blank line is the narrator's (the request's own voice).

Passages with nothing to say (a pause between two voices) join the passage before
them, so every passage is something a voice reads.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from voxserve.text.language import is_speakable
from voxserve.text.markup import Voicing, has_pronunciations, ssml_passages, strip_marks

#: ``Name: text`` or ``Name：text`` at the start of a line; the name is looked up in the table.
SPEAKER_LINE = re.compile(r"^[ \t]*([^:：\n]{1,64}?)[ \t]*[:：][ \t]*(.*)$")


@dataclass(frozen=True)
class Passage:
    """A run of text one voice reads, as the input wrote it, and who reads it: the name the input
    gave (a script's speaker or an SSML voice name; None: the request's own voice), with the
    emotion and the rate (a multiple of the request's speed) SSML set around it."""

    text: str
    voicing: Voicing = field(default_factory=Voicing)

    @property
    def speaker(self) -> str | None:
        return self.voicing.voice


def passages(text: str, speakers: Collection[str] = ()) -> list[Passage]:
    """The input's passages; ``speakers``: the names in the request's ``voices`` table (compared
    without case), which a script's lines may start with. Plain text with no such line is one
    passage of the request's voice."""
    found = [Passage(piece, voicing) for voicing, piece in ssml_passages(text)]
    if speakers and len(found) == 1 and found[0].speaker is None and found[0].text == text:
        found = _script(text, {name.casefold() for name in speakers})
    return _joined(found)


def _script(text: str, speakers: set[str]) -> list[Passage]:
    """A script's passages: each speaker's lines, the narrator's between them."""
    found: list[Passage] = []
    speaker: str | None = None
    lines: list[str] = []

    def close() -> None:
        if "".join(lines).strip():
            found.append(Passage("\n".join(lines).strip(), Voicing(speaker)))
        lines.clear()

    for line in text.splitlines():
        match = SPEAKER_LINE.match(line)
        if match and match.group(1).strip().casefold() in speakers:
            close()
            speaker, line = match.group(1).strip(), match.group(2)
        elif not line.strip():
            close()
            speaker = None
            continue
        lines.append(line)
    close()
    return found


def _speaks(text: str) -> bool:
    return is_speakable(strip_marks(text)) or has_pronunciations(text)


def _joined(found: list[Passage]) -> list[Passage]:
    """Passages with nothing to say (a pause between voices) join the one before them (or after);
    passages read the same way one after another are one."""
    joined: list[Passage] = []
    waiting = ""
    for passage in found:
        if not _speaks(passage.text):
            if joined:
                joined[-1] = replace(joined[-1], text=f"{joined[-1].text} {passage.text}")
            else:
                waiting += passage.text + " "
            continue
        if waiting:
            passage = replace(passage, text=waiting + passage.text)
            waiting = ""
        if joined and joined[-1].voicing == passage.voicing:
            joined[-1] = replace(joined[-1], text=f"{joined[-1].text}\n\n{passage.text}")
        else:
            joined.append(passage)
    return joined or found
