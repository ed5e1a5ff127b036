"""Tempo and pitch changes, each without changing the other.

Both run through FFmpeg's filters inside PyAV (no subprocess): ``atempo``
changes speed at constant pitch; a pitch shift resamples (``asetrate`` +
``aresample``) and undoes the resulting speed change with ``atempo``.
Effects apply per segment, so they stream like everything else.
"""

from __future__ import annotations

from fractions import Fraction

import av
import av.filter
import numpy as np

from voxserve.values import PCM

_ATEMPO_MIN, _ATEMPO_MAX = 0.5, 2.0  # one atempo stage; chained for more


def _atempo_chain(factor: float) -> list[str]:
    """Split a tempo factor into stages atempo handles at best quality."""
    stages: list[str] = []
    while factor > _ATEMPO_MAX:
        stages.append(str(_ATEMPO_MAX))
        factor /= _ATEMPO_MAX
    while factor < _ATEMPO_MIN:
        stages.append(str(_ATEMPO_MIN))
        factor /= _ATEMPO_MIN
    if abs(factor - 1.0) > 1e-6:
        stages.append(f"{factor:.6f}")
    return stages


def filter_chain(tempo: float, semitones: float, sample_rate: int) -> list[tuple[str, str]]:
    """The (filter, arguments) list for a tempo factor and a pitch shift."""
    filters: list[tuple[str, str]] = []
    if semitones:
        ratio = 2.0 ** (semitones / 12.0)
        filters.append(("asetrate", str(round(sample_rate * ratio))))
        filters.append(("aresample", str(sample_rate)))
        tempo /= ratio
    filters.extend(("atempo", stage) for stage in _atempo_chain(tempo))
    return filters


def change_tempo_and_pitch(pcm: PCM, sample_rate: int, tempo: float, semitones: float) -> PCM:
    """Play ``tempo`` times faster and ``semitones`` higher; identity when both are neutral."""
    filters = filter_chain(tempo, semitones, sample_rate)
    if not filters or pcm.size == 0:
        return pcm
    graph = av.filter.Graph()
    node = graph.add_abuffer(
        format="flt", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate)
    )
    source = node
    for name, args in filters:
        nxt = graph.add(name, args)
        node.link_to(nxt)
        node = nxt
    sink = graph.add("abuffersink")
    node.link_to(sink)
    graph.configure()

    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = Fraction(1, sample_rate)
    source.push(frame)
    source.push(None)
    out: list[PCM] = []
    while True:
        try:
            result = sink.pull()
            assert isinstance(result, av.AudioFrame)
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        out.append(result.to_ndarray().reshape(-1).astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def resample(pcm: PCM, rate: int, to: int) -> PCM:
    """A whole segment at another rate (a multi-voice text's engines differ in rate; the audio is
    made at the highest). Milliseconds for a sentence: in a thread."""
    if rate == to or pcm.size == 0:
        return pcm
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
