"""Final lengths in the headers of a streamed WAV or FLAC once it is whole.

A stream cannot know its length when it starts: WAV goes out with RIFF and
data sizes 0xFFFFFFFF, FLAC with "total samples: unknown". Players accept
that for a stream, but a file on disk should say what it holds (Python's
``wave`` reads a 1.4 s streamed WAV as 89,478 s). Once the last byte is
written, these few bytes are patched in place: no second encode.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_WAV_LIMIT = 0xFFFFFFFF  # a RIFF size field cannot say more; such a file keeps "unknown"
_FLAC_SAMPLES_OFFSET = 18  # "fLaC", the STREAMINFO block header, block sizes and frame sizes
_FLAC_SAMPLES_MASK = (1 << 36) - 1


def finalize_header(file: BinaryIO, format_name: str, samples: int) -> None:
    """Write the real lengths into ``file`` (seekable, opened for update) if its format has them."""
    if format_name == "wav":
        _finalize_wav(file)
    elif format_name == "flac":
        _finalize_flac(file, samples)


def _finalize_wav(file: BinaryIO) -> None:
    size = file.seek(0, 2)
    if size - 8 > _WAV_LIMIT:
        return
    file.seek(12)
    position = 12
    while position + 8 <= size:
        file.seek(position)
        chunk, declared = struct.unpack("<4sI", file.read(8))
        if chunk == b"data":
            file.seek(position + 4)
            file.write(struct.pack("<I", size - position - 8))
            file.seek(4)
            file.write(struct.pack("<I", size - 8))
            return
        position += 8 + declared + (declared & 1)


def _finalize_flac(file: BinaryIO, samples: int) -> None:
    file.seek(0)
    if file.read(4) != b"fLaC" or samples > _FLAC_SAMPLES_MASK:
        return
    file.seek(_FLAC_SAMPLES_OFFSET)
    (packed,) = struct.unpack(">Q", file.read(8))
    file.seek(_FLAC_SAMPLES_OFFSET)
    file.write(struct.pack(">Q", (packed & ~_FLAC_SAMPLES_MASK) | samples))
