"""Reference audio for cloning: checked before anything is stored, then normalized once.

Every rule a real engine depends on is checked on the content, not on the
file name or the client's word: the size, the format (sniffed from the
first bytes), that the whole file decodes, its length and sample rate
(CosyVoice wants 3–15 s at 16 kHz or more), and that it is neither silence
nor badly clipped. Each failure names the rule and what was measured.

Accepted audio becomes one canonical form, mono 16-bit at
:data:`REFERENCE_RATE` and a consistent loudness, that every cloning engine
can take as it is (GLM-TTS wants exactly 24 kHz mono s16).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av
import numpy as np

from voxserve.audio.pcm import level, wav_bytes
from voxserve.config import ReferenceSettings
from voxserve.errors import InvalidAudio, PayloadTooLarge, UnsupportedMediaType
from voxserve.values import PCM

REFERENCE_RATE = 24000
SILENCE_DBFS = -45.0  # quieter than this over the whole file is not a voice
LENGTH_GRACE = 0.1  # MP3 and AAC encoders pad a few tens of milliseconds: "15 s" may decode as 15.03 s
CLIPPED_SHARE = 0.01  # more than 1 % of samples at full scale is badly clipped
_FULL_SCALE = 0.999
MAX_RATE = 192000  # above any recording's; a FLAC header may claim 655 kHz to multiply its samples


@dataclass(frozen=True)
class CheckedReference:
    """An accepted reference: its canonical samples and what was measured of the original."""

    samples: PCM  # mono float32 at REFERENCE_RATE, levelled
    source_format: str
    source_rate: int
    seconds: float

    def wav_bytes(self) -> bytes:
        """The canonical file: 16-bit mono WAV at REFERENCE_RATE."""
        return wav_bytes(self.samples, REFERENCE_RATE)


def sniff_format(data: bytes) -> str | None:
    """The container named by the first bytes: wav, flac, ogg, m4a, mp3; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _declared_wav_seconds(data: bytes) -> float | None:
    """What a WAV header says the file holds, so a truncated upload can be told from a short one."""
    position = 12
    rate = channels = width = 0
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        if chunk == b"fmt " and size >= 16:
            channels, rate, _, _, bits = struct.unpack("<HIIHH", data[position + 10 : position + 24])
            width = bits // 8
        if chunk == b"data":
            if size == 0xFFFFFFFF or not (rate and channels and width):  # a streamed WAV: length unknown
                return None
            return float(size / (rate * channels * width))
        position += 8 + size + (size & 1)
    return None


def _samples(frames: list[av.AudioFrame]) -> PCM:
    chunks = [frame.to_ndarray().reshape(-1) for frame in frames]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _too_long(max_seconds: float) -> InvalidAudio:
    return InvalidAudio(
        f"audio is longer than {max_seconds:g} s, the longest a reference may be", param="audio"
    )


def _decode(data: bytes, format_name: str, max_seconds: float) -> tuple[PCM, PCM, int]:
    """(mono samples at the file's own rate, the same at REFERENCE_RATE, the file's rate).

    Decoded as a stream that stops as soon as it passes ``max_seconds``: a
    few hundred kilobytes of FLAC can hold hours of silence, which decoded
    whole would take gigabytes before any rule could refuse it.
    """
    native = av.AudioResampler(format="flt", layout="mono")
    canonical = av.AudioResampler(format="flt", layout="mono", rate=REFERENCE_RATE)
    original: list[av.AudioFrame] = []
    resampled: list[av.AudioFrame] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise InvalidAudio("audio: the file holds no audio stream", param="audio")
            codec = container.streams.audio[0].codec_context
            if codec is None:  # a header FFmpeg cannot make a decoder of (bits_per_sample 0, say)
                raise InvalidAudio(
                    f"audio: the {format_name} file's header names no usable codec", param="audio"
                )
            rate = codec.sample_rate
            if not 0 < rate <= MAX_RATE:
                raise InvalidAudio(
                    f"audio sample rate is {rate} Hz; at most {MAX_RATE} Hz is read", param="audio"
                )
            most = int((max_seconds + LENGTH_GRACE) * rate) + 1
            decoded = 0
            for frame in container.decode(audio=0):
                decoded += frame.samples
                if decoded > most:
                    raise _too_long(max_seconds)
                original += native.resample(frame)
                resampled += canonical.resample(frame)
        original += native.resample(None)
        resampled += canonical.resample(None)
    except (av.FFmpegError, ValueError) as exc:
        raise InvalidAudio(f"audio: the {format_name} file does not decode ({exc})", param="audio") from exc
    samples = _samples(original)
    if not samples.size:
        raise InvalidAudio(f"audio: the {format_name} file decodes to no samples", param="audio")
    if not np.isfinite(samples).all():  # resampling would turn them into silence the checks never see
        raise InvalidAudio(
            f"audio: the {format_name} file holds samples that are not numbers (NaN or infinity)",
            param="audio",
        )
    return samples, _samples(resampled), int(rate)


def check_reference(data: bytes, rules: ReferenceSettings) -> CheckedReference:
    """Check an uploaded reference against every rule; the canonical form if it passes."""
    if len(data) > rules.max_bytes:
        raise PayloadTooLarge(
            f"audio is {len(data)} bytes; the limit is {rules.max_bytes} bytes "
            f"({rules.max_bytes / 2**20:g} MiB)",
            param="audio",
        )
    format_name = sniff_format(data)
    if format_name is None:
        raise UnsupportedMediaType(
            "audio is not in a format voxserve reads (wav, mp3, flac, ogg, m4a), judged by its content",
            param="audio",
        )
    samples, canonical, rate = _decode(data, format_name, rules.max_seconds)
    seconds = samples.size / rate
    declared = _declared_wav_seconds(data) if format_name == "wav" else None
    if declared is not None and seconds < declared - 0.05:
        raise InvalidAudio(
            f"audio is truncated: its header declares {declared:.2f} s, the file holds {seconds:.2f} s",
            param="audio",
        )
    if rate < rules.min_rate:
        raise InvalidAudio(
            f"audio sample rate is {rate} Hz; at least {rules.min_rate} Hz is needed", param="audio"
        )
    if not rules.min_seconds - LENGTH_GRACE <= seconds <= rules.max_seconds + LENGTH_GRACE:
        raise InvalidAudio(
            f"audio is {seconds:.1f} s long; a reference must be "
            f"{rules.min_seconds:g}–{rules.max_seconds:g} s",
            param="audio",
        )
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    loudness = 20 * np.log10(max(rms, 1e-10))
    if loudness < SILENCE_DBFS:
        raise InvalidAudio(
            f"audio is silent: {loudness:.0f} dBFS on average, below {SILENCE_DBFS:.0f} dBFS", param="audio"
        )
    clipped = float(np.mean(np.abs(samples) >= _FULL_SCALE))
    if clipped > CLIPPED_SHARE:
        raise InvalidAudio(
            f"audio is badly clipped: {clipped:.1%} of samples at full scale (at most {CLIPPED_SHARE:.0%})",
            param="audio",
        )
    return CheckedReference(level(canonical), format_name, rate, round(seconds, 3))
