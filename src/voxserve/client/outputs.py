"""Which audio format a file name asks for: the commands that write audio let the extension decide,
and refuse a name that contradicts the format (MP3 bytes in a ``.wav``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

#: The audio formats the API answers in (the server's requests take theirs from here).
ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

#: File extensions and the response format each one holds.
EXTENSIONS: dict[str, str] = {
    **{str(name): str(name) for name in get_args(ResponseFormat)},
    "ogg": "opus",
    "m4a": "aac",
    "raw": "pcm",
}


def format_name(given: str) -> str:
    """A format as a user may write it (``ogg``, ``OPUS``) as voxserve's name for it."""
    name = EXTENSIONS.get(given.lower())
    if name is None:
        raise ValueError(f"format {given!r} is not one of {', '.join(sorted(EXTENSIONS))}")
    return name


def output_format(path: str, given: str | None) -> str:
    """The format to write ``path`` in: ``given`` (``--format``) or the extension, which must agree.

    ``-`` (standard output) is ``given`` or mp3; a name with no known extension needs ``given``.
    """
    wanted = format_name(given) if given else None
    if path == "-":
        return wanted or "mp3"
    extension = Path(path).suffix.lstrip(".").lower()
    implied = EXTENSIONS.get(extension)
    if implied is None:
        if wanted:
            return wanted
        raise ValueError(
            f"{path}: cannot tell the audio format from its name; end it in "
            f"{', '.join('.' + e for e in sorted(EXTENSIONS))}, or give --format"
        )
    if wanted and wanted != implied:
        raise ValueError(f"{path} names a .{extension} file, but the audio is {given}; name it .{wanted}")
    return implied
