"""Streaming encoders: PCM chunks in, encoded bytes out, as soon as they exist.

Every format is written by PyAV (FFmpeg's libraries, with libmp3lame,
libopus, aac and flac bundled) into a sink that cannot seek, so bytes can
leave for the client while the rest is still being synthesized. Container
quirks handled here:

- Ogg/Opus holds pages until the end unless ``page_duration`` is set; Opus
  accepts only 8, 12, 16, 24 or 48 kHz, so other rates are resampled (and
  every Opus decoder plays it back at 48 kHz whatever the encoded rate).
- WAV cannot be patched afterwards, so its RIFF and data sizes are
  0xFFFFFFFF ("unknown"), which decoders accept for streams.
- FLAC's STREAMINFO cannot be rewritten at the end; it carries no totals.
  A whole file written to disk gets both afterwards
  (:func:`voxserve.audio.finalize.finalize_header`, from ``samples``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import numpy as np

from voxserve.audio.pcm import to_s16le
from voxserve.values import PCM


@dataclass(frozen=True)
class AudioFormat:
    """An output format as clients name it."""

    name: str
    content_type: str
    extension: str
    container: str | None = None  # None: raw s16le samples, no container
    codec: str | None = None
    rates: tuple[int, ...] | None = None  # sample rates the codec accepts; None: any
    options: dict[str, str] = field(default_factory=dict)  # the container's
    codec_options: dict[str, str] = field(default_factory=dict)

    def output_rate(self, wanted: int) -> int:
        """The rate closest above ``wanted`` that this format accepts."""
        if self.rates is None or wanted in self.rates:
            return wanted
        higher = [rate for rate in self.rates if rate >= wanted]
        return min(higher) if higher else max(self.rates)


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        # LAME's fast mode (compression_level 7): 2.5x less CPU than its default, same sound for speech
        AudioFormat(
            "mp3",
            "audio/mpeg",
            "mp3",
            "mp3",
            "libmp3lame",
            rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
            codec_options={"compression_level": "7"},
        ),
        AudioFormat(
            "opus",
            "audio/ogg",
            "ogg",
            "ogg",
            "libopus",
            rates=(8000, 12000, 16000, 24000, 48000),
            options={"page_duration": "20000"},
        ),
        AudioFormat("aac", "audio/aac", "aac", "adts", "aac"),
        AudioFormat("flac", "audio/flac", "flac", "flac", "flac"),
        AudioFormat("wav", "audio/wav", "wav", "wav", "pcm_s16le"),
        AudioFormat("pcm", "audio/pcm", "pcm"),
    )
}


class _ByteSink:
    """A write-only file for PyAV: collects bytes until the encoder drains them."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class StreamEncoder:
    """Encode PCM chunk by chunk: ``write`` returns what is ready, ``finish`` the rest."""

    def __init__(self, audio_format: AudioFormat, input_rate: int, output_rate: int) -> None:
        self.format = audio_format
        self.input_rate = input_rate
        self.output_rate = output_rate
        self._resampler = (
            av.AudioResampler(format="flt", layout="mono", rate=output_rate)
            if output_rate != input_rate
            else None
        )
        self._sink = _ByteSink()
        self.samples = 0  # encoded so far, at the output rate: what a finished file's header declares
        self._container: av.container.OutputContainer | None = None
        self._stream: av.audio.stream.AudioStream | None = None
        if audio_format.container is not None:
            assert audio_format.codec is not None
            self._container = av.open(
                self._sink, "w", format=audio_format.container, options=audio_format.options
            )
            stream = self._container.add_stream(
                audio_format.codec, rate=output_rate, layout="mono", options=audio_format.codec_options
            )
            assert isinstance(stream, av.audio.stream.AudioStream)
            self._stream = stream

    def write(self, pcm: PCM) -> bytes:
        if pcm.size == 0:
            return b""
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.input_rate
        frames = self._resampler.resample(frame) if self._resampler else [frame]
        return self._encode(frames)

    def finish(self) -> bytes:
        """Flush the resampler and codec and close the container."""
        tail = self._resampler.resample(None) if self._resampler else []
        data = self._encode(tail)
        if self._container is not None and self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        return data + self._sink.drain()

    def _encode(self, frames: list[av.AudioFrame]) -> bytes:
        self.samples += sum(frame.samples for frame in frames)
        if self._stream is None or self._container is None:
            return b"".join(to_s16le(f.to_ndarray().reshape(-1).astype(np.float32)) for f in frames)
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.drain()
