"""Where speech resumes after a pause, measured from the audio's energy: a check of word times.

A word the text puts after a pause (the first of a sentence, one after a comma or a semicolon)
begins where the energy rises again after silence; the start a model gives that word can be
compared with it. Onsets are silence of at least :data:`MIN_PAUSE` followed by sound. A word and
an onset are compared when each is the other's nearest: an onset inside a word (after the closure
of a ``k`` or a ``t``) is then not taken for a word's start, and a comma the voice read without a
pause is not measured against the next pause along.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

FRAME = 0.005  # seconds
QUIET_DB = -35.0  # below the loudest frame: silence
MIN_PAUSE = 0.08  # seconds of silence before an onset that counts
SAME_EVENT = 0.25  # seconds: a word and an onset further apart are not one event (no pause there)
_PAUSE_MARK = re.compile(r"[,;:.!?，。！？；：、]")


def onsets(audio: NDArray[np.floating[Any]], rate: int) -> list[float]:
    """Where speech begins: at the start, and after every pause of at least :data:`MIN_PAUSE`."""
    size = int(FRAME * rate)
    frames = len(audio) // size
    if not frames:
        return []
    energy = np.sqrt((audio[: frames * size].reshape(frames, size).astype(np.float64) ** 2).mean(axis=1))
    loud = 20 * np.log10(np.maximum(energy, 1e-9) / max(float(energy.max()), 1e-9)) > QUIET_DB
    found: list[float] = []
    quiet = int(MIN_PAUSE / FRAME)  # the start counts as after a pause
    for index, is_loud in enumerate(loud):
        if is_loud:
            if quiet * FRAME >= MIN_PAUSE:
                found.append(index * FRAME)
            quiet = 0
        else:
            quiet += 1
    return found


def after_pauses(text: str, words: Sequence[str]) -> list[int]:
    """Which of ``words`` (found in ``text`` in order) come first or right after a punctuation mark."""
    found: list[int] = []
    position = 0
    for index, word in enumerate(words):
        at = text.find(word, position)
        if at < 0:
            return found  # the words are not the text's (normalized): measure what was matched
        if index == 0 or _PAUSE_MARK.search(text[position:at]):
            found.append(index)
        position = at + len(word)
    return found


def onset_errors(
    words: Sequence[Mapping[str, Any]], text: str, audio: NDArray[np.floating[Any]], rate: int
) -> list[float]:
    """For each word the text puts after a pause and the onset nearest it, when it is also the word
    nearest that onset and no further than :data:`SAME_EVENT`: the word's given start minus the
    onset (seconds)."""
    heard = np.array(onsets(audio, rate))
    if not heard.size:
        return []
    starts = np.array([float(words[i]["start"]) for i in after_pauses(text, [w["word"] for w in words])])
    errors = []
    for start in starts:
        onset = heard[np.abs(heard - start).argmin()]
        if starts[np.abs(starts - onset).argmin()] == start and abs(start - onset) <= SAME_EVENT:
            errors.append(float(start - onset))
    return errors
