"""English output transcribed back by Whisper: catches dropped or garbled segments."""

from __future__ import annotations

import httpx
import pytest
from faster_whisper import WhisperModel

from tests.support.audio import word_error_rate

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning before lunch.",
    "The children played happily in the garden.",
    "We will meet at the library after lunch.",
    "Turn left at the second traffic light, then go straight.",
]


@pytest.mark.parametrize("model", ["kokoro", "hibari"])
def test_word_error_rate(client: httpx.Client, whisper: WhisperModel, model: str) -> None:
    text = " ".join(SENTENCES)
    response = client.post("/v1/audio/speech", json={"model": model, "input": text, "response_format": "wav"})
    assert response.status_code == 200
    heard, error_rate = word_error_rate(whisper, response.content, text)
    assert error_rate <= 0.1, f"WER {error_rate:.2f}: heard {heard!r}"
