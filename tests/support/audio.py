"""Decoding and checking audio the way a listener would, for the tests."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import av
import jiwer
import numpy as np
from faster_whisper import WhisperModel
from numpy.typing import NDArray

from voxserve.values import from_s16le


@dataclass
class Decoded:
    samples: NDArray[np.float32]
    sample_rate: int
    codec: str

    @property
    def duration(self) -> float:
        return self.samples.size / self.sample_rate


def decode(data: bytes) -> Decoded:
    """Decode any container/codec PyAV knows into mono float32."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames = [
            f.to_ndarray().astype(np.float32).reshape(f.layout.nb_channels, -1)[0]
            for f in container.decode(stream)
        ]
        codec = stream.codec_context.name
        rate = stream.codec_context.sample_rate
    samples = np.concatenate(frames) if frames else np.zeros(0, np.float32)
    if samples.dtype != np.float32 or np.abs(samples).max(initial=0) > 1.5:
        samples = samples / 32768.0
    return Decoded(samples.astype(np.float32), rate, codec)


def decode_pcm(data: bytes, sample_rate: int) -> Decoded:
    return Decoded(from_s16le(data), sample_rate, "pcm_s16le")


def assert_speech_like(audio: Decoded, min_seconds: float = 0.3) -> None:
    """Not silence, not a constant tone or noise: loud enough, with pauses and bursts.

    Speech alternates louder and quieter 20 ms frames; its energy envelope
    varies a lot, while silence is flat at zero and steady noise is flat high.
    """
    assert audio.duration >= min_seconds, f"only {audio.duration:.2f} s of audio"
    frame = int(audio.sample_rate * 0.02)
    n = audio.samples.size // frame
    rms = np.sqrt(np.mean(audio.samples[: n * frame].reshape(n, frame) ** 2, axis=1))
    assert rms.max() > 0.02, f"too quiet to be speech (loudest frame rms {rms.max():.4f})"
    loud = rms > rms.max() * 0.1
    assert 0.3 < loud.mean() < 0.99, f"{loud.mean():.0%} of frames loud: not speech-like"
    variation = rms.std() / (rms.mean() + 1e-9)
    assert variation > 0.3, f"energy envelope too steady ({variation:.2f}): noise or tone"


def _words(text: str) -> str:
    return re.sub(r"[^a-z' ]", " ", text.lower()).strip()


def word_error_rate(whisper: WhisperModel, audio: bytes, text: str) -> tuple[str, float]:
    """What Whisper hears in English audio, and its word error rate against ``text``."""
    segments, _ = whisper.transcribe(io.BytesIO(audio), language="en", beam_size=1)
    heard = " ".join(s.text for s in segments)
    return heard, float(jiwer.wer(_words(text), _words(heard)))
