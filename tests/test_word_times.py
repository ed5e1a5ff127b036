"""Word times: mapped from an engine's phonemes (Kokoro's durations), carried by ``timestamps``, SSE
events, the speech stream and job captions; checked against the audio for the real model."""

from __future__ import annotations

import base64
import itertools
import json
import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from harness.alignment import onset_errors
from kokoro_onnx.sliding import Timing

from tests.support.api import SPEECH, ready_client, wait_for
from voxserve import captions
from voxserve.config import Settings
from voxserve.engines.fake import TimedFakeEngine
from voxserve.engines.kokoro_timing import ONSET_LEAD, word_times, written_words

TEXT = "One two three. Four five six seven."


def timings(phonemes: str, step: float = 0.1) -> list[Timing]:
    """Each phoneme ``step`` seconds long, back to back."""
    return [Timing(p, i * step, (i + 1) * step) for i, p in enumerate(phonemes)]


def test_one_group_of_phonemes_per_word() -> None:
    words = word_times(written_words("Hi, yo.", "en"), timings("haɪ, joʊ."))
    assert words is not None and [w.word for w in words] == ["Hi", "yo"]
    assert words[0].start == pytest.approx(0.0) and words[0].end == pytest.approx(0.3 - ONSET_LEAD)
    assert words[1].start == pytest.approx(0.4), "after a mark: from the space after it, no lead"
    assert words[1].end == pytest.approx(0.8 - ONSET_LEAD)


def test_words_espeak_reads_as_one_share_its_time() -> None:
    # espeak-ng writes "in the" as one word: ɪnðə
    words = word_times(written_words("Look in the box", "en"), timings("lʊk ɪnðə bɑks"))
    assert words is not None and [w.word for w in words] == ["Look", "in", "the", "box"]
    inside, the = words[1], words[2]
    assert inside.end == pytest.approx(the.start) and inside.start < the.start < the.end
    assert (inside.end - inside.start) / (the.end - the.start) == pytest.approx(2 / 3)


def test_mandarin_words_are_jieba_words_as_misaki_reads_them() -> None:
    words = word_times(written_words("我们去公园吧。", "zh"), timings("wo↓mən ʨʰy↘ kʊ→ŋɥɛ↗n pa."))
    assert words is not None and [w.word for w in words] == ["我们", "去", "公园", "吧"]


def test_languages_without_written_word_groups_have_none() -> None:
    assert written_words("こんにちは", "ja") == []
    assert word_times(written_words("...", "en"), timings("...")) is None


def test_word_captions_have_a_cue_per_word_and_lines_where_words_are_unknown() -> None:
    segments = [
        {
            "index": 0,
            "text": "Hi yo.",
            "start": 1.0,
            "end": 2.0,
            "words": [{"word": "Hi", "start": 1.0, "end": 1.4}, {"word": "yo", "start": 1.5, "end": 2.0}],
        },
        {"index": 1, "text": "你好。", "start": 2.5, "end": 3.0},
    ]
    assert captions.srt(segments, "word").split("\n\n") == [
        "1\n00:00:01,000 --> 00:00:01,400\nHi",
        "2\n00:00:01,500 --> 00:00:02,000\nyo",
        "3\n00:00:02,500 --> 00:00:03,000\n你好。\n",
    ]
    assert captions.vtt(segments).count(" --> ") == 2, "line level: a cue per segment"
    moved = captions.shifted_entry(segments[0], 10.0)
    assert moved["start"] == 11.0 and moved["words"][1] == {"word": "yo", "start": 11.5, "end": 12.0}


@pytest.fixture
def timed_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, default_engine="fake", segment_chars=60)
    with ready_client(settings, {"fake": TimedFakeEngine(name="fake")}) as client:
        yield client


def test_timestamps_are_per_word_from_an_engine_that_tells(timed_client: TestClient) -> None:
    body = {"input": TEXT, "response_format": "wav", "timestamps": True}
    answer = timed_client.post(SPEECH, json=body).json()
    assert answer["timestamp_level"] == "word"
    assert [t["word"] for t in answer["timestamps"]] == TEXT.replace(".", "").split()
    second = answer["segments"][1]
    assert second["words"][0] == {
        "word": "Four",
        "start": second["start"],
        "end": round(second["start"] + 0.2, 3),
    }
    assert answer["timestamps"][3]["start_time"] == pytest.approx(3 * 0.2 + 0.25, abs=0.002), (
        "after the pause"
    )


def test_sse_and_the_speech_stream_carry_the_words(timed_client: TestClient) -> None:
    sse = timed_client.post(SPEECH, json={"input": TEXT, "stream_format": "sse", "response_format": "pcm"})
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    told = [word["word"] for event in events for s in event.get("segments", []) for word in s["words"]]
    assert told == TEXT.replace(".", "").split()
    with timed_client.websocket_connect("ws://127.0.0.1/v1/audio/speech/stream") as socket:
        socket.send_json({"type": "text", "text": "One two. Three"})
        socket.send_json({"type": "end"})
        ends: list[dict[str, Any]] = []
        while not ends or ends[-1]["type"] != "done":
            message = socket.receive()
            if message.get("text"):
                ends.append(json.loads(message["text"]))
    words = [w for e in ends if e["type"] == "sentence.end" for s in e["segments"] for w in s["words"]]
    assert [w["word"] for w in words] == ["One", "two", "Three"]
    assert words[2]["start"] == pytest.approx(2 * 0.2 + 0.25, abs=0.002), "times run on across sentences"


def test_a_job_has_word_captions(timed_client: TestClient) -> None:
    job = timed_client.post("/v1/jobs", json={"input": TEXT, "response_format": "wav"}).json()
    wait_for(timed_client, job["id"], "succeeded")
    captions_url = f"/v1/jobs/{job['id']}/captions"
    by_word = timed_client.get(captions_url, params={"format": "vtt", "level": "word"}).text
    assert by_word.startswith("WEBVTT") and by_word.count(" --> ") == 7
    assert "00:00:00.850 --> 00:00:01.050\nFour" in by_word
    by_line = timed_client.get(captions_url, params={"format": "srt"}).text
    assert by_line.count(" --> ") == 2


HELD_OUT = {
    "af_heart": (
        "Yes, I know, but the shop closes at six, so we should hurry.",
        "On Sundays, when the weather is fine, my grandfather walks along the river.",
    ),
    "zf_xiaobei": ("明天早上，我们坐火车去北京，看看长城。", "如果下雨，我们就在家里做饭，聊聊天。"),
}


@pytest.mark.parametrize("voice", list(HELD_OUT))
def test_kokoro_words_start_where_the_audio_does(client: httpx.Client, voice: str) -> None:
    errors: list[float] = []
    for sentence in HELD_OUT[voice]:
        body = {"input": sentence, "voice": voice, "response_format": "pcm", "timestamps": True}
        answer = client.post(SPEECH, json=body, headers={"Cache-Control": "no-store"}).json()
        assert answer["timestamp_level"] == "word"
        words = [w for segment in answer["segments"] for w in segment["words"]]
        joiner = " " if voice == "af_heart" else ""
        spoken = re.sub(r"[,.，。]", "", sentence).replace(" ", joiner)
        assert joiner.join(w["word"] for w in words) == spoken
        assert all(a["end"] <= b["start"] + 0.001 for a, b in itertools.pairwise(words)), "in order"
        samples = np.frombuffer(base64.b64decode(answer["audio"]), dtype="<i2").astype(np.float32) / 32768
        errors += onset_errors(words, sentence, samples, 24000)
    assert len(errors) >= 4, "most pauses are measured"
    assert statistics.median(abs(e) for e in errors) <= 0.05, [round(e, 3) for e in errors]


def test_word_times_come_from_the_cache_with_the_audio(tmp_path: Path) -> None:
    engine = TimedFakeEngine(name="fake")
    settings = Settings(data_dir=tmp_path, default_engine="fake", segment_chars=60)
    body = {"input": TEXT, "response_format": "wav", "timestamps": True}
    with ready_client(settings, {"fake": engine}) as client:
        plain = client.post(SPEECH, json={**body, "timestamps": False, "input": "Cached before words."})
        assert plain.status_code == 200
        first = client.post(SPEECH, json=body).json()
        calls = len(engine.calls)
        again = client.post(SPEECH, json=body).json()
        assert len(engine.calls) == calls, "the audio and its words came from the cache"
        assert again["segments"] == first["segments"] and again["timestamp_level"] == "word"
        for sidecar in (tmp_path / "cache").glob("??/*.words"):
            sidecar.unlink()  # audio cached without its words (as before they were kept) is a miss
        renewed = client.post(SPEECH, json=body).json()
        assert len(engine.calls) == calls + 2 and renewed["segments"] == first["segments"]
        told = client.post(SPEECH, json={**body, "input": "Cached before words."}).json()
        assert [w["word"] for w in told["timestamps"]] == ["Cached", "before", "words"]
