"""Every error path of the API: status, code, the field named, and no engine time spent."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.api import LOCAL, SPEECH, assert_error
from tests.support.audio import decode
from voxserve.api import create_app
from voxserve.config import Settings
from voxserve.engines.fake import FakeEngine


@pytest.mark.parametrize(
    ("body", "status", "code", "param", "text"),
    [
        ({"input": ""}, 400, "invalid_request", "input", "empty"),
        ({"input": 42}, 400, "invalid_request", "input", "valid string"),
        ({"input": "hi", "speed": 5}, 400, "invalid_request", "speed", "less than or equal to 4"),
        ({"input": "hi", "speed": "fast"}, 400, "invalid_request", "speed", "valid number"),
        ({"input": "hi", "response_format": "mid"}, 400, "invalid_request", "response_format", "mp3"),
        ({"input": "hi", "stream_format": "ws"}, 400, "invalid_request", "stream_format", "sse"),
        ({"input": "hi", "bogus": 1}, 400, "invalid_request", "bogus", "Extra inputs"),
        ({"input": "hi", "pitch": 30}, 400, "invalid_request", "pitch", "12"),
        ({}, 400, "invalid_request", "input", "required"),
        ({"input": "x" * 501}, 413, "input_too_large", "input", "limit for a synchronous request is 500"),
        ({"input": "hi", "voice": "nobody"}, 404, "unknown_voice", "voice", "available: tone"),
        ({"input": "hi", "model": "tts-9"}, 404, "unknown_model", "model", "available:"),
        ({"input": "hi", "sample_rate": 1234}, 422, "unsupported_value", "sample_rate", "48000"),
        ({"input": "hi", "language": "xx"}, 422, "unsupported_value", "language", "choose one of en, ja, zh"),
        ({"input": "?!…"}, 422, "unsupported_value", "input", "nothing to speak"),
    ],
)
def test_bad_speech_requests(
    fake_client: TestClient,
    fake_engine: FakeEngine,
    body: dict[str, object],
    status: int,
    code: str,
    param: str,
    text: str,
) -> None:
    assert_error(fake_client.post(SPEECH, json=body), status, code, param, text)
    assert fake_engine.calls == [], "no engine time for a bad request"


def test_malformed_json(fake_client: TestClient) -> None:
    response = fake_client.post(
        SPEECH, content=b'{"input": "hi",', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json", None, "not valid JSON")


def test_wrong_media_type(fake_client: TestClient) -> None:
    response = fake_client.post(SPEECH, content=b"input=hi", headers={"Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type", "Content-Type", "application/json")


def test_engine_failure_before_the_first_byte_is_a_json_error(
    fake_client: TestClient, fake_engine: FakeEngine
) -> None:
    fake_engine.fail_on = "Hello"
    response = fake_client.post(SPEECH, json={"input": "Hello there."})
    assert_error(response, 502, "engine_error", None, "told to fail")


def test_empty_audio_is_an_error(fake_client: TestClient, fake_engine: FakeEngine) -> None:
    fake_engine.empty_on = "Hello"
    assert_error(fake_client.post(SPEECH, json={"input": "Hello there."}), 502, "empty_audio", None)


def test_unknown_route_uses_the_error_shape(fake_client: TestClient) -> None:
    assert_error(fake_client.get("/v1/nothing"), 404, "not_found", None)


@pytest.mark.parametrize(
    ("form", "status", "code", "param"),
    [
        ({"text": "hi", "output_format": "aiff"}, 400, "invalid_request", "output_format"),
        ({"text": "hi", "task_id": "../../etc/passwd"}, 400, "invalid_request", "task_id"),
        ({"text": "hi", "speed": "quick"}, 400, "invalid_request", "speed"),
        ({"emotion": "happy"}, 400, "invalid_request", "text"),
        ({"text": "hi", "audio_path": "/refs/me.wav"}, 422, "capability_missing", "audio_path"),
    ],
)
def test_bad_tts_forms(
    fake_client: TestClient, form: dict[str, str], status: int, code: str, param: str
) -> None:
    assert_error(fake_client.post("/tts", data=form), status, code, param)


def test_reference_upload_on_an_engine_without_cloning(fake_client: TestClient) -> None:
    files = {"reference_audio": ("me.wav", b"RIFF....WAVE", "audio/wav")}
    response = fake_client.post("/tts", data={"text": "hi"}, files=files)
    assert_error(response, 422, "capability_missing", "reference_audio", "cannot clone")


def test_oversize_reference_upload(fake_client: TestClient) -> None:
    files = {"reference_audio": ("me.wav", b"\0" * (10 * 1024 * 1024 + 1), "audio/wav")}
    response = fake_client.post("/tts", data={"text": "hi"}, files=files)
    assert_error(response, 413, "input_too_large", "reference_audio", "10485760")


class SlowLoadingEngine(FakeEngine):
    loaded_at: float | None = None

    async def load(self) -> None:
        import asyncio

        await asyncio.sleep(1.0)
        await super().load()
        self.loaded_at = time.monotonic()


def test_a_request_during_loading_waits_for_it(tmp_path: Path) -> None:
    """The first request after start is answered once the engines load; /readyz tells the truth."""
    settings = Settings(data_dir=tmp_path, default_engine="slow")
    engine = SlowLoadingEngine(name="slow")
    app = create_app(settings, engines={"slow": engine})
    with TestClient(app, base_url=LOCAL) as client:
        assert client.get("/readyz").json()["status"] == "loading"
        started = time.monotonic()
        response = client.post(SPEECH, json={"input": "hello", "response_format": "wav"})
        answered = time.monotonic()
        assert response.status_code == 200 and decode(response.content).duration > 0.1
        assert engine.loaded_at is not None and started < engine.loaded_at < answered, "waited for the load"
        assert answered - started < 10, "not for its bound"


def test_not_ready_until_engines_load(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_engine="slow", load_wait_seconds=0)
    app = create_app(settings, engines={"slow": SlowLoadingEngine(name="slow")})
    with TestClient(app, base_url=LOCAL) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "loading"
        response = client.post(SPEECH, json={"input": "hello"})
        assert_error(response, 503, "not_ready", None, "loading")
        assert response.headers["Retry-After"] == "2"
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post(SPEECH, json={"input": "hello"}).status_code == 200


class BrokenEngine(FakeEngine):
    """An engine whose model cannot load (a missing file, a library error)."""

    async def load(self) -> None:
        raise FileNotFoundError("[Errno 2] No such file or directory: '/models/gone.onnx'")


def test_an_engine_that_fails_to_load_fails_alone_and_says_why(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_engine="fake")
    app = create_app(settings, engines={"fake": FakeEngine(), "broken": BrokenEngine(name="broken")})
    with TestClient(app, base_url=LOCAL) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "failed", "one of its own is broken"
        assert ready.json()["engines"]["broken"] == {
            "status": "failed",
            "runs": "here",
            "reason": "FileNotFoundError: [Errno 2] No such file or directory: '/models/gone.onnx'",
        }
        assert ready.json()["engines"]["fake"]["status"] == "ready"
        assert client.post(SPEECH, json={"input": "hello", "response_format": "wav"}).status_code == 200
        answer = client.post(SPEECH, json={"model": "broken", "input": "hello"})
        assert_error(
            answer, 503, "engine_unavailable", None, "engine 'broken' failed to load: FileNotFoundError"
        )


def test_readiness_tells_why_only_to_a_key_when_keys_are_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_engine="fake", auth={"enabled": True})
    app = create_app(settings, engines={"fake": FakeEngine(), "broken": BrokenEngine(name="broken")})
    with TestClient(app, base_url=LOCAL) as client:
        deadline = time.monotonic() + 10
        while (told := client.get("/readyz").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert told == {
            "status": "failed",
            "engines": {"fake": {"status": "ready"}, "broken": {"status": "failed"}},
        }
