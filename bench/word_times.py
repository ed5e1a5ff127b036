"""Kokoro's word times against the audio: where speech resumes after a pause, by its energy.

Each sentence goes through ``POST /v1/audio/speech`` with ``timestamps: true`` (16-bit PCM). The
words the text puts after a pause (the first, and each after a comma or a semicolon) are compared
with where the audio's energy rises after silence (:mod:`harness.alignment`). The held-out
sentences played no part in the timing; ``ONSET_LEAD`` was measured on the English calibration
sentences.
"""

from __future__ import annotations

import base64
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from harness.alignment import onset_errors
from harness.server import NO_CACHE, running_server

RATE = 24000  # Kokoro's: pcm comes at the engine's rate


@dataclass(frozen=True)
class Language:
    voices: tuple[str, ...]
    calibration: tuple[str, ...]
    held_out: tuple[str, ...]


LANGUAGES = {
    "en": Language(
        ("af_heart", "am_michael", "bf_emma", "jm_kumo"),
        (
            "Well, if you ask me, the answer is no.",
            "After the storm, the village was quiet, and the fishermen went back to sea.",
            "She opened the letter, read it twice, and then, without a word, put it in the fire.",
            "In the morning, we walked to the station; the train, of course, was late.",
        ),
        (
            "Yes, I know, but the shop closes at six, so we should hurry.",
            "On Sundays, when the weather is fine, my grandfather walks along the river.",
            "The report was long, dull, and, frankly, rather badly written.",
            "If it rains tomorrow, we will stay inside, read books, and bake bread.",
            "Her brother, a quiet man with grey hair, smiled at the children.",
            "First, mix the flour and the sugar; then, slowly, add the milk.",
            "Before the concert began, the lights dimmed, and the audience fell silent.",
            "No, thank you, I have already eaten, but a cup of tea would be lovely.",
        ),
    ),
    "zh": Language(
        ("zf_xiaobei", "zm_yunjian"),
        (),
        (
            "今天天气很好，我们去公园散步吧。",
            "明天早上，我们坐火车去北京，看看长城。",
            "她在图书馆里看书，一直看到天黑。",
            "如果下雨，我们就在家里做饭，聊聊天。",
            "这家饭馆的菜很好吃，价格也不贵。",
            "他每天早上七点起床，然后去公园跑步。",
        ),
    ),
}


def measure(url: str, voice: str, sentences: Sequence[str]) -> tuple[list[float], int, int]:
    """The onset errors (seconds) of the sentences in one voice; and how many of its segments
    came with word times, of how many."""
    errors: list[float] = []
    timed = total = 0
    with httpx.Client(base_url=url, timeout=300) as client:
        for sentence in sentences:
            body = {"input": sentence, "voice": voice, "response_format": "pcm", "timestamps": True}
            answer = client.post("/v1/audio/speech", json=body)
            answer.raise_for_status()
            found = answer.json()
            samples = np.frombuffer(base64.b64decode(found["audio"]), dtype="<i2")
            words = [word for segment in found["segments"] for word in segment.get("words", [])]
            timed += sum(1 for segment in found["segments"] if segment.get("words"))
            total += len(found["segments"])
            errors += onset_errors(words, sentence, samples.astype(np.float32) / 32768, RATE)
    return errors, timed, total


def run(data_dir: Path, calibrate: bool) -> list[tuple[str, str, list[float], int, int]]:
    """(language, voice, errors, timed segments, segments) for every voice of every language."""
    rows = []
    with running_server(data_dir, data_dir / "bench-server.log", NO_CACHE) as url:
        for code, language in LANGUAGES.items():
            sentences = language.calibration if calibrate else language.held_out
            rows += [(code, voice, *measure(url, voice, sentences)) for voice in language.voices if sentences]
    return rows


def summary(errors: Sequence[float]) -> tuple[float, float, float, float, float]:
    """Median signed error, median, p90 and largest absolute error (ms), share within 50 ms."""
    absolute = sorted(abs(e) for e in errors)
    p90 = absolute[min(len(absolute) - 1, int(0.9 * len(absolute)))]
    within = sum(1 for e in absolute if e <= 0.05) / len(absolute)
    return (
        1000 * statistics.median(errors),
        1000 * statistics.median(absolute),
        1000 * p90,
        1000 * absolute[-1],
        within,
    )
