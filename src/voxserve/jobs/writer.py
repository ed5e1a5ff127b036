"""A running job's audio on disk: the PCM it resumes from, and the encoded file as it grows.

Each finished segment is appended twice: as s16le to ``audio.pcm`` (synced,
so a crash loses at most the segment being made) and through one streaming
encoder to ``stream.<ext>``, the requested format. Listeners of a running
job read that file as it grows, byte for byte, so joining a long job costs
a file read, not a re-encode of everything so far. When the job ends, the
stream's header gets its real lengths (WAV, FLAC), the file is renamed to
its output name (same inode: a listener's open handle reads on to the end)
and the PCM is removed.

Every method blocks on disk or the encoder: callers run them in a thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from voxserve.audio import AudioFormat, StreamEncoder, to_s16le
from voxserve.audio.finalize import finalize_header
from voxserve.values import PCM, from_s16le

ENCODE_BLOCK = 48000  # bytes of s16le encoded per step when rebuilding a stream (1 s at 24 kHz)


class JobAudioWriter:
    """Appends segments to a job's PCM and encoded stream; finishes them into the output file."""

    def __init__(
        self, pcm: Path, stream: Path, audio_format: AudioFormat, input_rate: int, output_rate: int
    ) -> None:
        self.audio_format = audio_format
        self.stream = stream
        self._pcm_path = pcm
        self._encoder = StreamEncoder(audio_format, input_rate, output_rate)
        self._pcm: BinaryIO | None = None
        self._encoded: BinaryIO | None = None
        self.stream_bytes = 0  # the encoded stream's length so far

    def open(self, bytes_done: int) -> None:
        """Open for appending after ``bytes_done`` bytes of PCM (a resumed job re-encodes those)."""
        pcm = open(self._pcm_path, "a+b")  # noqa: SIM115 - kept open across segments, closed by close()
        pcm.truncate(bytes_done)  # drop a half-written segment from a crashed attempt
        self._pcm = pcm
        partial = self.stream.with_suffix(self.stream.suffix + ".rebuild")
        encoded = open(partial, "wb")  # noqa: SIM115 - as above
        pcm.seek(0)
        remaining = bytes_done
        while remaining > 0 and (block := pcm.read(min(ENCODE_BLOCK, remaining))):
            remaining -= len(block)
            encoded.write(self._encoder.write(from_s16le(block)))
        encoded.flush()
        partial.replace(self.stream)
        self._encoded = encoded
        self.stream_bytes = encoded.tell()

    def append(self, audio: PCM) -> tuple[int, bytes]:
        """One finished segment; the PCM bytes written, and the encoded bytes added to the stream
        (written before this returns)."""
        assert self._pcm is not None and self._encoded is not None, "open() first"
        data = to_s16le(audio)
        self._pcm.write(data)
        self._pcm.flush()
        os.fsync(self._pcm.fileno())
        encoded = self._encoder.write(audio)
        self._encoded.write(encoded)
        self._encoded.flush()
        self.stream_bytes += len(encoded)
        return len(data), encoded

    def finish(self, output: Path) -> None:
        """Flush the encoder, give the header its lengths, and make the stream the output file."""
        assert self._encoded is not None, "open() first"
        self._encoded.write(self._encoder.finish())
        self._encoded.close()
        with open(self.stream, "r+b") as stream:
            finalize_header(stream, self.audio_format.name, self._encoder.samples)
        self.stream.replace(output)
        self.close()
        self._pcm_path.unlink(missing_ok=True)

    def close(self) -> None:
        for handle in (self._pcm, self._encoded):
            if handle is not None:
                handle.close()
