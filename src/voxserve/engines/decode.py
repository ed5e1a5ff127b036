"""Decoding whole audio files (engine answers, prompt audio) into mono float32."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from voxserve.values import PCM


def decode_audio(source: bytes | Path, rate: int | None = None) -> tuple[PCM, int]:
    """Any format FFmpeg reads → (mono float32 samples in [-1, 1], the rate the file declares).

    Channels are averaged. With ``rate``, the samples are resampled to it as they are decoded
    (the second value is still the file's own rate, so a caller can tell that they differed).
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    with av.open(handle, mode="r") as container:
        declared = container.streams.audio[0].codec_context.sample_rate
        frames = [out for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    frames += resampler.resample(None)
    chunks = [frame.to_ndarray().reshape(-1) for frame in frames]
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return audio, declared
