"""Operations on PCM frames: level, fades, silence, sample conversion.

All audio inside voxserve is mono float32 in [-1, 1] (``engines.PCM``) until
an encoder turns it into bytes.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voxserve.values import PCM

TARGET_RMS = 0.1  # -20 dBFS: speech at a comfortable, consistent level
PEAK_CEILING = 0.95  # never above -0.45 dBFS, so no engine's output clips
FADE_SECONDS = 0.008


def level(pcm: PCM) -> PCM:
    """Bring a segment to the target loudness without letting its peak clip.

    Engines differ: Kokoro's peaks can exceed 1.0, hibari is quiet. Levelling
    every segment the same way keeps a long text even from start to end.
    """
    if pcm.size == 0:
        return pcm
    peak = float(np.max(np.abs(pcm)))
    if peak == 0.0:
        return pcm
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    gain = min(TARGET_RMS / rms, PEAK_CEILING / peak)
    return (pcm * gain).astype(np.float32)


def fade_samples(sample_rate: int) -> int:
    return int(sample_rate * FADE_SECONDS)


def fade_in(pcm: PCM, samples: int) -> PCM:
    n = min(samples, pcm.size)
    if n == 0:
        return pcm
    out = pcm.copy()
    out[:n] *= np.linspace(0.0, 1.0, n, dtype=np.float32)
    return out


def fade_out(pcm: PCM, samples: int) -> PCM:
    n = min(samples, pcm.size)
    if n == 0:
        return pcm
    out = pcm.copy()
    out[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return out


def fade(pcm: PCM, sample_rate: int) -> PCM:
    """Short linear fade in and out, so segments join without clicks."""
    n = min(fade_samples(sample_rate), pcm.size // 2)
    return fade_out(fade_in(pcm, n), n)


def silence(seconds: float, sample_rate: int) -> PCM:
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)


def to_s16le(pcm: PCM) -> bytes:
    """Little-endian signed 16-bit samples, as raw ``pcm`` output carries them: rounded at the scale
    ``from_s16`` reads them back with (and FFmpeg's own conversion uses), so a job's PCM read back
    and re-encoded is the audio it was, not a gain of 32767/32768 and a truncation lower."""
    samples: NDArray[np.int16] = np.clip(np.rint(pcm * 32768.0), -32768, 32767).astype("<i2")
    return samples.tobytes()


def wav_bytes(samples: NDArray[np.floating[Any]], sample_rate: int) -> bytes:
    """A whole 16-bit WAV file; ``samples`` is mono, or (frames, channels) for more channels."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(to_s16le(samples.reshape(-1)))
    return buffer.getvalue()


def duration(pcm: PCM, sample_rate: int) -> float:
    return pcm.size / sample_rate
