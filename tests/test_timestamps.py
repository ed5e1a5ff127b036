"""Where each segment is in the audio: SSE deltas carry it, ``timestamps: true`` returns it, and it
matches the audio (a segment's speech begins within 50 ms of its start, silence fills its pause)."""

from __future__ import annotations

import base64
import json

import numpy as np
from fastapi.testclient import TestClient

from tests.support.api import SPEECH
from tests.support.audio import decode

TEXT = "The first sentence is here. A second one follows it, with a clause. And the third one ends it."


def _rms(samples: np.ndarray, rate: int, start: float, end: float) -> float:
    part = samples[int(start * rate) : int(end * rate)]
    return float(np.sqrt(np.mean(part**2))) if part.size else 0.0


def _onset(samples: np.ndarray, rate: int, after: float) -> float:
    """The first 5 ms frame from ``after`` on that is clearly not silence."""
    frame = int(rate * 0.005)
    start = int(after * rate)
    for offset in range(start, samples.size - frame, frame):
        if np.sqrt(np.mean(samples[offset : offset + frame] ** 2)) > 0.01:
            return offset / rate
    return samples.size / rate


def test_caption_times_match_the_audio(fake_client: TestClient) -> None:
    response = fake_client.post(SPEECH, json={"input": TEXT, "response_format": "wav", "timestamps": True})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    audio = decode(base64.b64decode(body["audio"]))
    segments = body["segments"]
    assert [s["index"] for s in segments] == list(range(len(segments))) and len(segments) >= 3
    assert "".join(s["text"] for s in segments).replace(" ", "") == TEXT.replace(" ", "")
    for segment, following in zip(segments, [*segments[1:], None], strict=True):
        assert segment["start"] < segment["end"] <= audio.duration + 0.01
        assert abs(_onset(audio.samples, audio.sample_rate, segment["start"]) - segment["start"]) <= 0.05
        if following is not None:
            gap = _rms(audio.samples, audio.sample_rate, segment["end"] + 0.01, following["start"] - 0.01)
            assert gap < 0.005, "the pause between segments is silence"
    assert body["timestamps"][0] == {"word": segments[0]["text"], "start_time": segments[0]["start"],
                                     "end_time": segments[0]["end"]}  # fmt: skip


def test_sse_deltas_carry_the_segments(fake_client: TestClient) -> None:
    response = fake_client.post(
        SPEECH, json={"input": TEXT, "stream_format": "sse", "response_format": "pcm"}
    )
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    told = [segment for event in events for segment in event.get("segments", [])]
    captioned = fake_client.post(SPEECH, json={"input": TEXT, "response_format": "wav", "timestamps": True})
    assert told == captioned.json()["segments"], "the same segments and times, as they finish"
    assert events[-1]["type"] == "speech.audio.done"
