"""When each word is spoken, from Kokoro's own predicted durations.

Kokoro's duration predictor runs inside the ONNX graph: the frames each token lasts are the
tensor ``/encoder/Cast_output_0`` (rounded, clipped to at least one frame), which the released
graph does not return. :func:`timed_model` writes a copy of the graph that also returns it as
``duration`` (the ``onnx`` package; the weights are the same, so the audio is too), and
kokoro-onnx then reports when each phoneme is spoken. :func:`word_times` maps phonemes back to
words: a front end writes one group of phonemes per word, separated by spaces (espeak-ng for
English and the other Latin-script languages; misaki's Mandarin one per word as jieba cuts it,
which :func:`written_words` cuts the same way). Japanese and Hindi keep sentence-level times.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import jieba
from kokoro_onnx.sliding import Timing

from voxserve.values import WordTime

DURATION_TENSOR = "/encoder/Cast_output_0"
DURATION_OUTPUT = "duration"
#: A word as the front ends see it: letters, digits, apostrophes, and hyphens inside.
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
#: Languages whose front end writes one group of phonemes per written word (Mandarin: per jieba word).
WORD_LANGUAGES = frozenset({"en", "es", "fr", "it", "pt", "zh"})


def timed_model(model: Path) -> Path:
    """The model with its durations as an output, written beside it once (atomically)."""
    timed = model.with_name(f"{model.stem}.timed.onnx")
    if timed.exists() and timed.stat().st_mtime >= model.stat().st_mtime:
        return timed
    import onnx

    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    if DURATION_OUTPUT not in {output.name for output in graph.output}:
        graph.node.append(onnx.helper.make_node("Identity", [DURATION_TENSOR], [DURATION_OUTPUT]))
        graph.output.append(onnx.helper.make_tensor_value_info(DURATION_OUTPUT, onnx.TensorProto.INT64, None))
    partial = timed.with_suffix(f".{os.getpid()}.partial")
    onnx.save(graph_model, str(partial))
    partial.replace(timed)
    return timed


#: How a step of the alignment pairs phoneme groups with words: one with one, a group holding two or
#: three words (espeak-ng writes "in the" as one), a word read as two or three groups.
STEPS = ((1, 1), (1, 2), (1, 3), (2, 1), (3, 1))
UNEVEN = 0.75  # what a step other than one-to-one costs, in letters of length mismatch
#: How much earlier a word is heard than the frames its phonemes are aligned to: the decoder's
#: convolutions start the sound ahead of the alignment. Measured on sentences apart from those the
#: benchmark checks (``python -m bench word-times --calibrate``): the median onset lag.
ONSET_LEAD = 0.05


def written_words(text: str, language: str) -> list[str]:
    """The words of ``text`` as its front end divides them: jieba's for Mandarin (misaki's own
    division), else runs of letters and digits with the apostrophes and hyphens inside them. Empty
    for a language whose front end does not write words apart. Blocking (jieba): where the front
    end runs."""
    if language not in WORD_LANGUAGES:
        return []
    if language == "zh":
        return [word.strip() for word in jieba.lcut(text) if _WORD.search(word)]
    return _WORD.findall(text)


def word_times(words: Sequence[str], timings: Sequence[Timing]) -> tuple[WordTime, ...] | None:
    """Each of ``words`` with when its phonemes are spoken; None when there are no words."""
    groups = _phoneme_groups(timings)
    if not words or not groups:
        return None
    placed: list[WordTime] = []
    for (first_group, group_count), (first_word, word_count) in _aligned(words, groups):
        begin, finish = groups[first_group][1], groups[first_group + group_count - 1][2]
        spoken = words[first_word : first_word + word_count]
        letters = sum(len(word) for word in spoken)
        at = begin
        for word in spoken:  # words sharing a group share its time by their lengths
            until = at + (finish - begin) * len(word) / letters
            placed.append(WordTime(word, at, until))
            at = until
    return tuple(placed)


def _phoneme_groups(timings: Sequence[Timing]) -> list[tuple[str, float, float]]:
    """The phonemes between spaces, with when they are heard: from their first letter's frames less
    :data:`ONSET_LEAD`; after a punctuation mark from the space after it (the model's pause for
    the mark is shorter than the mark's frames). Punctuation is no word's."""
    groups: list[tuple[str, float, float]] = []
    letters, start, end, shortest = "", 0.0, 0.0, 0.0
    after_mark: float | None = None  # where the space after a punctuation mark starts
    marked = False
    for timing in [*timings, None]:
        if timing is None or timing.phoneme.isspace():
            if letters:
                groups.append((letters, start, end))
            letters = ""
            after_mark = timing.start if timing is not None and marked else None
            marked = False
            continue
        if not timing.phoneme.isalpha():
            marked = True
            continue
        if not letters:
            start = after_mark if after_mark is not None else max(0.0, timing.start - ONSET_LEAD)
            shortest = start + timing.end - timing.start  # at least its first phoneme's length
        letters += timing.phoneme
        end = max(shortest, timing.end - ONSET_LEAD)
    return groups


def _aligned(
    words: Sequence[str], groups: list[tuple[str, float, float]]
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Words paired with phoneme groups in order (dynamic programming over :data:`STEPS`, by
    length: a group is about as long as its words, scaled by the text's phonemes per letter)."""
    scale = sum(len(group[0]) for group in groups) / sum(len(word) for word in words)
    inf = float("inf")
    rows, cols = len(groups) + 1, len(words) + 1
    cost = [[inf] * cols for _ in range(rows)]
    came: list[list[tuple[int, int] | None]] = [[None] * cols for _ in range(rows)]
    cost[0][0] = 0.0
    for g in range(rows):
        for w in range(cols):
            if cost[g][w] == inf:
                continue
            for dg, dw in STEPS:
                if g + dg >= rows or w + dw >= cols:
                    continue
                sounds = sum(len(group[0]) for group in groups[g : g + dg])
                written = scale * sum(len(word) for word in words[w : w + dw])
                mismatch = abs(sounds - written) + (0.0 if dg == dw == 1 else UNEVEN * scale)
                if cost[g][w] + mismatch < cost[g + dg][w + dw]:
                    cost[g + dg][w + dw] = cost[g][w] + mismatch
                    came[g + dg][w + dw] = (dg, dw)
    if cost[-1][-1] == inf:
        return []
    pairs: list[tuple[tuple[int, int], tuple[int, int]]] = []
    g, w = rows - 1, cols - 1
    while g or w:
        taken = came[g][w]
        assert taken is not None
        g, w = g - taken[0], w - taken[1]
        pairs.append(((g, taken[0]), (w, taken[1])))
    return pairs[::-1]
