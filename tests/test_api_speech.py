"""The API over the real embedded engines, through a real ``voxserve serve`` process."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
from openai import OpenAI

from tests.support.audio import assert_speech_like, decode, decode_pcm
from tests.support.voices import best

SPEECH = "/v1/audio/speech"
SENTENCE = "The quick brown fox jumps over the lazy dog."
FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
NO_CACHE = {"Cache-Control": "no-store"}  # tests of engine work: no segment may come from the cache


def speak(client: httpx.Client, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    response = client.post(SPEECH, json={"model": "hibari", "input": SENTENCE, **body}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def segments_synthesized(client: httpx.Client, engine: str) -> float:
    metrics = client.get("/metrics").text
    match = re.search(rf'voxserve_segments_synthesized_total{{engine="{engine}"}} ([\d.e+]+)', metrics)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("response_format", FORMATS)
def test_every_format_is_speech_with_consistent_duration(client: httpx.Client, response_format: str) -> None:
    response = speak(client, response_format=response_format, seed=7)
    reference = decode(speak(client, response_format="wav", seed=7).content)
    content_type = {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }[response_format]
    assert response.headers["content-type"] == content_type
    if response_format == "pcm":
        audio = decode_pcm(response.content, 24000)
    else:
        audio = decode(response.content)
        assert audio.sample_rate == (48000 if response_format == "opus" else 24000)
    assert audio.duration == pytest.approx(reference.duration, abs=0.12)
    assert_speech_like(audio, min_seconds=1.5)


def test_kokoro_speaks_english_chinese_and_japanese(client: httpx.Client) -> None:
    for text in ("Good morning, everyone.", "今天天气很好，我们去公园吧。", "こんにちは、元気ですか。"):
        response = client.post(SPEECH, json={"input": text, "response_format": "wav"})
        assert response.status_code == 200, response.text
        assert response.headers["x-voxserve-engine"] == "kokoro"
        assert_speech_like(decode(response.content), min_seconds=0.8)


def test_openai_sdk_works_unchanged(server: str, tmp_path: Path) -> None:
    sdk = OpenAI(base_url=f"{server}/v1", api_key="unused")
    path = tmp_path / "speech.mp3"
    with sdk.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Hello from the OpenAI client."
    ) as response:
        response.stream_to_file(path)
    audio = decode(path.read_bytes())
    assert audio.codec.startswith("mp3")
    assert_speech_like(audio, min_seconds=1.0)
    models = {m.id for m in sdk.models.list()}
    assert {"kokoro", "hibari", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= models


def test_seed_000_client_works_as_written(server: str, tmp_path: Path) -> None:
    url = server
    data = {"text": "这是带有喜悦情绪的语音合成。", "emotion": "happy", "speed": 1.1}
    response = requests.post(url + "/tts", data=data, timeout=300)
    assert response.status_code == 200
    (tmp_path / "output.wav").write_bytes(response.content)
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-voxserve-ignored"] == "emotion"
    assert_speech_like(decode((tmp_path / "output.wav").read_bytes()), min_seconds=1.0)


def test_tts_names_the_file_by_task_id(client: httpx.Client) -> None:
    form = {
        "text": "Hello there.",
        "task_id": "task_1700000000000_ab12",
        "output_format": "ogg",
        "model": "hibari",
    }
    response = client.post("/tts", data=form)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="task_1700000000000_ab12.ogg"'
    assert decode(response.content).codec == "opus"


def test_sse_events_carry_the_audio(client: httpx.Client) -> None:
    response = speak(client, stream_format="sse", response_format="wav")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] == len(SENTENCE)
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert_speech_like(decode(audio), min_seconds=1.5)


def test_first_audio_leaves_before_the_whole_text_is_done(client: httpx.Client) -> None:
    text = " ".join(f"Sentence {i} is one of several that make up a longer text." for i in range(5))
    started = time.perf_counter()
    body = {"input": text, "response_format": "pcm"}
    with client.stream("POST", SPEECH, json=body, headers=NO_CACHE) as response:
        chunks = response.iter_raw()
        next(chunks)
        first = time.perf_counter() - started
        rest = sum(len(c) for c in chunks)
    total = time.perf_counter() - started
    assert rest > 0
    assert first < total / 3, f"first audio after {first:.2f} s of {total:.2f} s"


def test_client_disconnect_stops_synthesis(client: httpx.Client, server_log: Path) -> None:
    text = " ".join(f"This is sentence number {i} of a text nobody will hear." for i in range(30))
    before = segments_synthesized(client, "kokoro")
    body = {"input": text, "response_format": "pcm"}
    with client.stream("POST", SPEECH, json=body, headers=NO_CACHE) as response:
        next(response.iter_raw())
    time.sleep(1.5)  # the segment under way when the client left may still finish
    settled = segments_synthesized(client, "kokoro")
    time.sleep(2.5)  # long enough for three more segments if synthesis had gone on
    assert segments_synthesized(client, "kokoro") == settled, "synthesis went on after the client left"
    assert settled - before < 5
    assert re.search(
        r"request \w+ disconnected client=\S+ key=- engine=kokoro .*chars=1639 ", server_log.read_text()
    )


def test_one_log_line_per_request(client: httpx.Client, server_log: Path) -> None:
    """The server's output is a file, not a terminal: one JSON object per line."""
    request_id = speak(client).headers["x-request-id"]
    time.sleep(0.2)
    line = next(line for line in server_log.read_text().splitlines() if f"request {request_id} " in line)
    record = json.loads(line)
    assert re.fullmatch(
        rf"request {request_id} ok client=127\.0\.0\.1 key=- engine=hibari voice=heart format=mp3 chars=44 "
        r"audio_s=[\d.]+ ttfa_ms=\d+ rtf=[\d.]+ total_ms=\d+",
        record["message"],
    )
    assert record["request_id"] == request_id and record["route"] == "/v1/audio/speech"
    assert record["engine"] == "hibari" and record["chars"] == 44 and record["key_id"] == "-"
    assert record["level"] == "INFO" and record["ttfa_ms"] <= record["total_ms"]


def test_speed_pitch_and_sample_rate(client: httpx.Client) -> None:
    normal = decode(speak(client, response_format="wav", seed=1).content)
    fast = decode(speak(client, response_format="wav", seed=1, speed=3.0).content)
    assert fast.duration == pytest.approx(normal.duration / 3, rel=0.15)
    low = decode(speak(client, response_format="wav", seed=1, pitch=-4, sample_rate=16000).content)
    assert low.sample_rate == 16000
    assert low.duration == pytest.approx(normal.duration, rel=0.05)


def test_hibari_is_reproducible_for_a_seed(client: httpx.Client) -> None:
    first, second = (speak(client, NO_CACHE, response_format="wav", seed=3).content for _ in range(2))
    assert first == second, "synthesized twice (no cache), the same samples"


def test_hibari_refuses_chinese(client: httpx.Client) -> None:
    response = client.post(SPEECH, json={"model": "hibari", "input": "你好"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "capability_missing"


def test_catalog(client: httpx.Client) -> None:
    voices = client.get("/v1/audio/voices").json()
    ids = {(v["engine"], v["id"]) for v in voices["voices"]}
    assert ("kokoro", "jf_alpha") in ids and ("hibari", "heart") in ids and ("kokoro", "zf_xiaobei") in ids
    assert voices["aliases"]["alloy"]["en"][0] == best("en", "female")
    assert voices["aliases"]["echo"]["zh"][0] == best("zh", "male")
    ready = client.get("/readyz").json()
    engines = {name: (engine["status"], engine["runs"]) for name, engine in ready["engines"].items()}
    assert ready["status"] == "ready"
    assert engines == {"kokoro": ("ready", "here"), "hibari": ("ready", "here"), "espeak": ("ready", "here")}
    assert "notices" not in ready, "the whole voice set is installed"
    assert [worker["healthy"] for worker in ready["workers"]] == [True]


def test_the_defaults_speak_other_languages_through_espeak_ng(client: httpx.Client) -> None:
    body = {"input": "Guten Morgen, wie geht es Ihnen heute?", "language": "de", "response_format": "wav"}
    response = client.post(SPEECH, json=body)
    assert response.status_code == 200, response.text
    assert (response.headers["x-voxserve-engine"], response.headers["x-voxserve-voice"]) == (
        "espeak",
        "espeak",
    )
    audio = decode(response.content)
    assert audio.sample_rate == 22050 and 1.5 < audio.duration < 6 and np.abs(audio.samples).max() > 0.2


@pytest.mark.parametrize("model", ["hibari", "kokoro"])
def test_the_same_request_gives_the_same_samples(client: httpx.Client, model: str) -> None:
    body = {"model": model, "input": "The same words, spoken again.", "response_format": "pcm"}
    fresh = {"Cache-Control": "no-store"}
    answers = {client.post(SPEECH, json=body, headers=fresh).content for _ in range(3)}
    assert len(answers) == 1 and len(next(iter(answers))) > 24000


@pytest.mark.parametrize(
    ("model", "voice"), [("kokoro", "jm_kumo"), ("hibari", "heart"), ("espeak", "espeak")]
)
def test_every_engine_shows_its_load_latency_and_errors(client: httpx.Client, model: str, voice: str) -> None:
    """Embedded engines and programs report what remote pools do: /v1/engines and /metrics."""
    assert speak(client, NO_CACHE, model=model, voice=voice, input="One more sentence.").status_code == 200
    engines = {engine["name"]: engine for engine in client.get("/v1/engines").json()["engines"]}
    (instance,) = engines[model]["instances"]
    assert instance["url"] == "embedded" and instance["healthy"] and instance["in_flight"] == 0
    assert instance["limit"] >= 1 and instance["requests"] >= 1 and instance["errors"] == 0
    assert instance["latency_ms_ewma"] > 0 and instance["latency_ms_p95"] > 0
    metrics = client.get("/metrics").text
    sent = re.search(rf'voxserve_instance_requests_total{{engine="{model}",[^}}]*}} (\S+)', metrics)
    assert sent is not None and float(sent.group(1)) >= 1, metrics[:2000]
