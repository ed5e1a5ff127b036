"""Test signals: a pure tone, and a voice-like signal that passes every reference rule."""

from __future__ import annotations

import numpy as np

from voxserve.audio.pcm import wav_bytes

RATE = 24000


def tone(seconds: float, freq: float = 220.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds), dtype=np.float32) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def voice_like(seconds: float, rate: int) -> np.ndarray:
    """A voiced, syllable-paced signal at a speaking level."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 160 * t) + 0.1 * np.sin(2 * np.pi * 480 * t)).astype(
        np.float32
    )


GOOD = wav_bytes(voice_like(5.0, 44100), 44100)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in a signal (Hz): what a listener hears as a tone's pitch."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])
