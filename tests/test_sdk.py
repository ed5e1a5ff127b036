"""The SDK (voxserve.client) against the real app over the fake engine, and its retries alone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.api import JOB_TEXT
from tests.support.audio import decode
from voxserve.client import APIError, Client, ConnectionFailed, Retry
from voxserve.engines.fake import FakeEngine

QUICK = Retry(attempts=3, base=0.01, cap=0.05)


def sdk(test_client: TestClient) -> Client:
    return Client(http=test_client, retry=QUICK)  # type: ignore[arg-type]  # TestClient is an httpx.Client


def test_speech_and_its_errors(fake_client: TestClient, tmp_path: Path) -> None:
    client = sdk(fake_client)
    audio = decode(client.speech("Hello there, friend.", response_format="wav", seed=3))
    assert audio.sample_rate == 16000 and audio.duration > 0.5
    with client.stream_speech("One. Two. Three.", response_format="pcm") as chunks:
        assert sum(len(chunk) for chunk in chunks) > 16000
    out = tmp_path / "out"
    written = client.speech_to_file(out / "hi.wav", "Hello.", response_format="wav")
    assert decode(written.read_bytes()).duration > 0.1
    assert [p.name for p in out.iterdir()] == ["hi.wav"], "no partial file left beside it"
    with pytest.raises(APIError) as refused:
        client.speech("hi", voice="nobody")
    error = refused.value
    assert (error.status, error.code, error.param) == (404, "unknown_voice", "voice")
    assert "available: tone" in error.message and not error.retryable


def test_jobs_from_submission_to_download(fake_client: TestClient, tmp_path: Path) -> None:
    client = sdk(fake_client)
    job = client.submit_job(JOB_TEXT, response_format="wav", name="chapter", idempotency_key="k1")
    assert job["status"] == "queued" and not job["replayed"]
    assert client.submit_job(JOB_TEXT, response_format="wav", name="chapter", idempotency_key="k1")[
        "replayed"
    ]
    seen: list[str] = []
    done = client.wait_job(job["id"], on_progress=lambda state: seen.append(state["status"]), interval=0.05)
    assert done["status"] == "succeeded" and seen[-1] == "succeeded"
    path = client.download_job(job["id"], tmp_path / "chapter.wav")
    assert decode(path.read_bytes()).duration == pytest.approx(done["progress"]["audio_seconds"], abs=0.3)
    events = list(client.job_events(job["id"]))
    assert events[-1]["status"] == "succeeded" and events[-1]["id"] == job["id"]
    assert [j["id"] for j in client.list_jobs(status="succeeded")["data"]] == [job["id"]]
    assert client.cancel_job(job["id"])["status"] == "succeeded", "an ended job stays as it was"
    with pytest.raises(APIError, match="job_not_found"):
        client.get_job("job_nope")
    assert {e["name"] for e in client.engines()["engines"]} == {"fake"}
    assert {voice["id"] for voice in client.list_voices()["voices"]} == {"tone"}


def test_a_refusal_is_retried_after_what_retry_after_says() -> None:
    busy = {"error": {"code": "busy", "message": "x"}}
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "0"}, json=busy),
            httpx.Response(429, headers={"Retry-After": "0"}, json=busy),
            httpx.Response(202, json={"id": "job_1", "status": "queued"}),
        ]
    )
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return next(answers)

    http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://voxserve")
    job = Client(http=http, retry=QUICK).submit_job("text")
    assert job["id"] == "job_1" and len(sent) == 3, "refusals did nothing: even a job is sent again"


@pytest.mark.parametrize(("status", "keyed", "sends"), [(502, False, 1), (502, True, 3), (400, True, 1)])
def test_an_ambiguous_failure_is_retried_only_when_repeating_is_safe(
    status: int, keyed: bool, sends: int
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, text="upstream said no")

    http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://voxserve")
    with pytest.raises(APIError) as failed:
        Client(http=http, retry=QUICK).submit_job("text", idempotency_key="k" if keyed else None)
    assert len(sent) == sends
    assert (failed.value.code, failed.value.message) == (f"http_{status}", "upstream said no"), (
        "not voxserve's shape"
    )


def test_an_unreachable_server() -> None:
    client = Client("http://127.0.0.1:9", retry=QUICK)
    with pytest.raises(ConnectionFailed, match="GET /v1/engines: connection refused"):
        client.engines()


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSERVE_API_KEY", "vx_k_abc_secret")
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"usage": {}})

    client = Client("http://voxserve", retry=QUICK)
    client._http = httpx.Client(
        transport=httpx.MockTransport(answer), base_url="http://voxserve", headers=client._http.headers
    )
    client.usage()
    assert seen == ["Bearer vx_k_abc_secret"]


def test_the_fake_engine_is_called_once_per_segment(fake_client: TestClient, fake_engine: FakeEngine) -> None:
    sdk(fake_client).speech("One sentence.", response_format="wav")
    assert len(fake_engine.calls) == 1


def test_speech_against_an_openai_compatible_server() -> None:
    """Only OpenAI's fields are sent unless more are asked for: a strict OpenAI server accepts it."""
    from harness.servers.engines import Behaviour, openai_app, serving

    behaviour = Behaviour()
    with serving(openai_app(behaviour)) as url, Client(url, api_key="sk-test", retry=QUICK) as client:
        audio = client.speech("Hello there.", model="tts-1", voice="alloy", response_format="pcm")
    assert len(audio) > 4800 and behaviour.requests[-1]["input"] == "Hello there."
