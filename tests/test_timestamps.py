"""Where each segment is in the audio: SSE deltas carry it, ``timestamps: true`` returns it, jobs
write it as captions, and it matches the audio (a segment's speech begins within 50 ms of its
start, silence fills its pause)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tests.support.api import SPEECH, ClientFactory, submit, wait_for
from tests.support.audio import decode
from voxserve import captions
from voxserve.captions import CaptionLevel
from voxserve.jobs.timeline import SegmentLog

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
    assert body["timestamps"][0] == {
        "word": segments[0]["text"],
        "start_time": segments[0]["start"],
        "end_time": segments[0]["end"],
    }


def test_sse_deltas_carry_the_segments(fake_client: TestClient) -> None:
    response = fake_client.post(
        SPEECH, json={"input": TEXT, "stream_format": "sse", "response_format": "pcm"}
    )
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    told = [segment for event in events for segment in event.get("segments", [])]
    captioned = fake_client.post(SPEECH, json={"input": TEXT, "response_format": "wav", "timestamps": True})
    assert told == captioned.json()["segments"], "the same segments and times, as they finish"
    assert events[-1]["type"] == "speech.audio.done"


def test_a_job_writes_captions_beside_its_audio(make_client: ClientFactory) -> None:
    client = make_client()
    job = submit(client, name="chapter")
    wait_for(client, job["id"], "succeeded")
    audio = decode(client.get(f"/v1/jobs/{job['id']}/audio").content)
    segments = client.get(f"/v1/jobs/{job['id']}/captions", params={"format": "json"}).json()["segments"]
    assert [s["index"] for s in segments] == [0, 1, 2]
    for segment in segments:
        assert abs(_onset(audio.samples, audio.sample_rate, segment["start"]) - segment["start"]) <= 0.05
    assert segments[-1]["end"] <= audio.duration
    srt = client.get(f"/v1/jobs/{job['id']}/captions")
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert srt.headers["content-disposition"] == 'attachment; filename="chapter.srt"'
    first = srt.text.split("\n\n")[0].splitlines()
    assert (
        first[0] == "1"
        and first[1].startswith("00:00:00,000 --> 00:00:0")
        and first[2] == segments[0]["text"]
    )
    vtt = client.get(f"/v1/jobs/{job['id']}/captions", params={"format": "vtt"}).text
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    refused = client.get(f"/v1/jobs/{job['id']}/captions", params={"format": "ass"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "format"


def test_a_resumed_job_forgets_the_lines_past_its_saved_progress(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path / "segments.jsonl")
    for index in range(4):
        log.append({"index": index, "text": f"s{index}", "start": index * 1.0, "end": index + 0.5})
    log.keep(2)  # progress saved after segment 1; segments 2 and 3 will be made again
    assert [entry["index"] for entry in log.read()] == [0, 1]
    assert captions.srt(log.read()).splitlines()[:3] == ["1", "00:00:00,000 --> 00:00:00,500", "s0"]


def test_captions_of_a_hundred_thousand_segments(tmp_path: Path) -> None:
    """A book's worth of segments (two days of audio): every cue, in order, in each format."""

    log = SegmentLog(tmp_path / "timeline.jsonl")
    lines = [
        {"index": i, "start": i * 2.0, "end": i * 2.0 + 1.5, "text": f"Line {i}."} for i in range(100_000)
    ]
    log.path.write_text("".join(json.dumps(line) + "\n" for line in [*lines[1:], lines[0]]))  # first last
    log.keep(100_000)
    paths: dict[tuple[str, CaptionLevel], Path] = {
        (name, "line"): tmp_path / f"book.{name}" for name in ("srt", "vtt", "json")
    }
    log.write_captions(paths)
    cues = paths["srt", "line"].read_text(encoding="utf-8").split("\n\n")
    assert len(cues) == 100_000
    assert cues[0] == "1\n00:00:00,000 --> 00:00:01,500\nLine 0."
    assert cues[-1] == "100000\n55:33:18,000 --> 55:33:19,500\nLine 99999.\n"
    assert paths["vtt", "line"].read_text(encoding="utf-8").count(" --> ") == 100_000
    assert len(json.loads(paths["json", "line"].read_text(encoding="utf-8"))["segments"]) == 100_000
