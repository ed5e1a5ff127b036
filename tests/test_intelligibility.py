"""English output transcribed back by Whisper: catches dropped or garbled segments."""

from __future__ import annotations

import httpx
import pytest
from faster_whisper import WhisperModel

from tests.support.audio import word_error_rate
from tests.support.voices import best

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning before lunch.",
    "The children played happily in the garden.",
    "We will meet at the library after lunch.",
    "Turn left at the second traffic light, then go straight.",
]


@pytest.mark.parametrize(
    ("model", "voice", "target"),
    [(None, best("en"), 0.05), ("hibari", "heart", 0.1)],  # no model, no voice: Kokoro's best native
)
def test_word_error_rate(
    client: httpx.Client, whisper: WhisperModel, model: str | None, voice: str, target: float
) -> None:
    text = " ".join(SENTENCES)
    body = {"input": text, "response_format": "wav", **({"model": model} if model else {})}
    response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200
    assert response.headers["x-voxserve-voice"] == voice
    heard, error_rate = word_error_rate(whisper, response.content, text)
    assert error_rate <= target, f"WER {error_rate:.2f}: heard {heard!r}"
