"""Encoders, effects and joins on synthetic signals, decoded back with PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.audio import decode, decode_pcm
from tests.support.signals import RATE, tone
from voxserve.audio import FORMATS, StreamEncoder, change_tempo_and_pitch, fade, level


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / samples.size)


def encode_in_chunks(name: str, pcm: np.ndarray, output_rate: int = RATE) -> tuple[list[bytes], bytes]:
    audio_format = FORMATS[name]
    encoder = StreamEncoder(audio_format, RATE, audio_format.output_rate(output_rate))
    parts = [encoder.write(pcm[i : i + 4800]) for i in range(0, pcm.size, 4800)]
    parts.append(encoder.finish())
    return parts, b"".join(parts)


@pytest.mark.parametrize("name", ["mp3", "opus", "aac", "flac", "wav"])
@pytest.mark.parametrize("rate", [24000, 44100])
def test_every_format_decodes_with_its_rate_and_duration(name: str, rate: int) -> None:
    parts, data = encode_in_chunks(name, tone(2.0), rate)
    decoded = decode(data)
    # Opus decoders always run at 48 kHz; the encoded rate is only noted in the header
    assert decoded.sample_rate == (48000 if name == "opus" else FORMATS[name].output_rate(rate))
    assert decoded.duration == pytest.approx(2.0, abs=0.07)
    assert dominant_frequency(decoded.samples, decoded.sample_rate) == pytest.approx(220, abs=3)
    assert sum(1 for part in parts[:-1] if part) >= 5, "bytes must flow before the end"


def test_opus_resamples_to_a_rate_it_accepts() -> None:
    assert FORMATS["opus"].output_rate(44100) == 48000
    assert FORMATS["opus"].output_rate(22050) == 24000
    assert FORMATS["mp3"].output_rate(44100) == 44100


def test_raw_pcm_is_s16le_at_the_output_rate() -> None:
    _, data = encode_in_chunks("pcm", tone(1.0), 16000)
    decoded = decode_pcm(data, 16000)
    assert decoded.duration == pytest.approx(1.0, abs=0.01)
    assert dominant_frequency(decoded.samples, 16000) == pytest.approx(220, abs=2)


def test_streamed_wav_declares_unknown_sizes() -> None:
    parts, _ = encode_in_chunks("wav", tone(0.5))
    assert parts[0][:4] == b"RIFF" and parts[0][4:8] == b"\xff\xff\xff\xff"


@pytest.mark.parametrize(
    ("tempo", "semitones"), [(2.0, 0), (0.5, 0), (4.0, 0), (0.25, 0), (1.0, 5), (1.0, -7), (1.5, 3)]
)
def test_tempo_and_pitch_change_independently(tempo: float, semitones: float) -> None:
    out = change_tempo_and_pitch(tone(1.0), RATE, tempo, semitones)
    assert out.size / RATE == pytest.approx(1.0 / tempo, rel=0.05)
    expected = 220.0 * 2 ** (semitones / 12)
    assert dominant_frequency(out, RATE) == pytest.approx(expected, rel=0.02)


def test_neutral_effects_return_the_input_untouched() -> None:
    pcm = tone(0.3)
    assert change_tempo_and_pitch(pcm, RATE, 1.0, 0.0) is pcm


def test_level_evens_out_quiet_and_clipping_input() -> None:
    quiet, hot = level(tone(1.0, amplitude=0.02)), level(tone(1.0, amplitude=1.4))
    assert np.sqrt(np.mean(quiet**2)) == pytest.approx(np.sqrt(np.mean(hot**2)), rel=0.01)
    assert np.abs(hot).max() <= 0.95


def test_fade_removes_the_click_at_segment_edges() -> None:
    pcm = np.full(RATE // 2, 0.5, dtype=np.float32)
    faded = fade(pcm, RATE)
    assert faded[0] == 0.0 and faded[-1] == 0.0
    assert np.abs(np.diff(faded)).max() < 0.01, "no step larger than a ramp's"


def test_the_clients_format_names_are_the_servers() -> None:
    """The command line names formats from the request model (it never loads the encoders)."""
    from typing import get_args

    from voxserve.client.outputs import ResponseFormat

    assert set(get_args(ResponseFormat)) == set(FORMATS)


def test_16_bit_samples_read_back_are_the_samples_written() -> None:
    """A job's PCM file is read back (resume, listeners) and encoded again: the conversion both ways
    uses one scale and rounds, so nothing drifts (it lost 1/32768 of gain and half a step each way)."""
    from voxserve.audio.pcm import to_s16le
    from voxserve.values import from_s16le

    samples = np.random.default_rng(7).uniform(-1.0, 1.0, RATE).astype(np.float32)
    written = to_s16le(samples)
    assert to_s16le(from_s16le(written)) == written
    assert np.max(np.abs(from_s16le(written) - samples)) <= 0.5 / 32768 + 1e-9
    edges = np.frombuffer(to_s16le(np.array([1.0, -1.0, 2.0, 0.5], np.float32)), "<i2")
    assert edges.tolist() == [32767, -32768, 32767, 16384]
