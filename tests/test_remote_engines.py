"""Each remote adapter against a server speaking its engine's real protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from harness.server import free_port
from harness.servers.cosyvoice import Model, cosyvoice_app
from harness.servers.engines import Behaviour, emotivoice_app, openai_app, serving, tone

from tests.support.api import assert_error, ready_client
from tests.support.audio import decode
from tests.support.signals import dominant_frequency
from voxserve.audio.pcm import wav_bytes
from voxserve.client.errors import unreachable
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines import SegmentRequest
from voxserve.engines.cosyvoice import CosyVoiceOptions, CosyVoiceRuntime
from voxserve.engines.emotivoice import EmotiVoiceEngine, EmotiVoiceOptions
from voxserve.engines.openai import OpenAIEngine, OpenAIOptions
from voxserve.engines.remote import RemoteEngine, default_client
from voxserve.errors import EngineFailed, EngineOverloaded, EngineRejected, EngineTimeout, EngineUnavailable

TEXT = "你好，今天天气很好。"


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def stand_in(behaviour: Behaviour) -> Iterator[Callable[[Callable[[Behaviour], FastAPI]], str]]:
    """Start a test server from an app factory; all stop at the end of the test."""
    stack: list[object] = []

    def start(factory: Callable[[Behaviour], FastAPI]) -> str:
        context = serving(factory(behaviour))
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)  # type: ignore[attr-defined]


async def collect(engine: RemoteEngine, request: SegmentRequest) -> list[np.ndarray]:
    await engine.load()
    try:
        return [chunk async for chunk in engine.synthesize(request)]
    finally:
        await engine.close()


def cosyvoice(url_or_client: str | httpx.AsyncClient, **options: Any) -> CosyVoiceRuntime:
    """A CosyVoice runtime adapter (CosyVoice-300M-SFT's speakers unless told)."""
    checked = CosyVoiceOptions(**{"generation": 1, "voices": ["中文女"], **options})
    client = default_client(url_or_client) if isinstance(url_or_client, str) else url_or_client
    return CosyVoiceRuntime("cosy", client, checked)


def segment(voice: str, **fields: object) -> SegmentRequest:
    return SegmentRequest(text=TEXT, language="zh", voice=voice, **fields)  # type: ignore[arg-type]


async def test_cosyvoice_sft_streams_int16(stand_in: Callable[..., str], behaviour: Behaviour) -> None:
    url = stand_in(cosyvoice_app)
    engine = cosyvoice(url)
    chunks = await collect(engine, segment("中文女"))
    assert len(chunks) > 3, "the body streams in pieces"
    audio = np.concatenate(chunks)
    np.testing.assert_allclose(audio, tone(TEXT, 22050), atol=1 / 16384)
    assert behaviour.requests == [{"tts_text": TEXT, "path": "/inference_sft", "spk_id": "中文女"}]


async def test_cosyvoice_instructions_use_inference_instruct(
    stand_in: Callable[..., str], behaviour: Behaviour
) -> None:
    url = stand_in(lambda b: cosyvoice_app(b, Model(1, instruct=True)))
    engine = cosyvoice(url, model="iic/CosyVoice-300M-Instruct")
    await collect(engine, segment("中文女", instructions="用四川话说这句话"))
    assert behaviour.requests[0] == {
        "tts_text": TEXT,
        "path": "/inference_instruct",
        "spk_id": "中文女",
        "instruct_text": "用四川话说这句话<|endofprompt|>",
    }


async def test_cosyvoice_tts_form_api(stand_in: Callable[..., str], behaviour: Behaviour) -> None:
    url = stand_in(lambda b: cosyvoice_app(b, Model(3)))
    engine = cosyvoice(url, generation=3, voices=["default"], api="tts")
    audio = np.concatenate(await collect(engine, segment("default", seed=42)))
    assert audio.size == tone(TEXT, 24000).size
    assert behaviour.requests == [{"path": "/tts", "text": TEXT, "seed": 42, "audio_path": None}]


@pytest.mark.parametrize(
    ("fields", "prompt"),
    [
        ({"emotion": "happy"}, "开心"),
        ({"emotion": "fearful"}, "恐惧"),
        ({"instructions": "非常开心"}, "非常开心"),
    ],
)
async def test_emotivoice_request_fields(
    stand_in: Callable[..., str], behaviour: Behaviour, fields: dict[str, str], prompt: str
) -> None:
    """Emotions reach EmotiVoice's style encoder as the Chinese words it knows; instructions as they are."""
    url = stand_in(emotivoice_app)
    engine = EmotiVoiceEngine("emoti", default_client(url), EmotiVoiceOptions(voices=["8051", "9017"]))
    audio = np.concatenate(await collect(engine, segment("9017", speed=1.2, **fields)))
    assert audio.size == tone(TEXT, 16000).size
    assert behaviour.requests == [
        {
            "input": TEXT,
            "voice": "9017",
            "prompt": prompt,
            "language": "zh_us",
            "model": "emoti-voice",
            "response_format": "wav",
            "speed": 1.2,
        }
    ]


async def test_a_file_at_another_rate_than_configured_plays_at_the_right_speed(
    stand_in: Callable[..., str], behaviour: Behaviour, caplog: pytest.LogCaptureFixture
) -> None:
    """The server answers 24 kHz WAV, the table says 16 kHz: the file's own rate is what its samples mean."""
    url = stand_in(lambda b: emotivoice_app(b, sample_rate=24000))
    for _ in range(2):  # two instances of one engine: one warning
        engine = EmotiVoiceEngine("emoti", default_client(url), EmotiVoiceOptions(sample_rate=16000))
        audio = np.concatenate(await collect(engine, segment("8051")))
        seconds = tone(TEXT, 24000).size / 24000
        assert audio.size / 16000 == pytest.approx(seconds, abs=0.01), "same duration, not 1.5x longer"
        pitch = 180 + len(TEXT) % 120  # the stand-in's tone
        assert dominant_frequency(audio, 16000) == pytest.approx(pitch, abs=3), "same pitch, not 2/3 of it"
    warnings = [r.getMessage() for r in caplog.records if "answers at 24000 Hz" in r.getMessage()]
    assert len(warnings) == 1 and "sample_rate = 16000" in warnings[0]


@pytest.mark.parametrize(
    ("model", "instructed"),
    [("kokoro", False), ("tts-1-hd", False), ("gpt-4o-mini-tts", True), ("gpt-4o-mini-tts-2025-12-15", True)],
)
async def test_openai_compatible_pcm_passthrough(
    stand_in: Callable[..., str], behaviour: Behaviour, model: str, instructed: bool
) -> None:
    """Instructions go only to a model that follows them; tts-1 and Kokoro-FastAPI ignore them."""
    url = stand_in(openai_app)
    options = OpenAIOptions(voices=["af_heart"], model=model, api_key="sk-test")
    engine = OpenAIEngine("kokoro-fastapi", default_client(url), options)
    assert engine.capabilities.instructions is instructed
    speeds = (1.0, 1.0) if instructed else (0.25, 4.0)  # gpt-4o-mini-tts ignores speed: voxserve's tempo
    assert engine.capabilities.native_speed == speeds
    request = SegmentRequest(text="Hello there.", language="en", voice="af_heart", instructions="calm")
    chunks = await collect(engine, request)
    assert len(chunks) > 1 and np.concatenate(chunks).size == tone("Hello there.", 24000).size
    sent = {
        "model": model,
        "input": "Hello there.",
        "voice": "af_heart",
        "response_format": "pcm",
        "speed": 1.0,
        **({"instructions": "calm"} if instructed else {}),
        "authorization": "Bearer sk-test",
    }
    assert behaviour.requests == [sent]


async def test_out_of_memory_mid_stream_is_an_answer_that_stopped_short(
    stand_in: Callable[..., str], behaviour: Behaviour
) -> None:
    """CosyVoice runs out of memory inside its generator, after the 200: the body just stops. The adapter
    says so; whether it was the input or the instance is the pool's to tell (tests/test_cosyvoice.py)."""
    url = stand_in(cosyvoice_app)
    behaviour.capacity, behaviour.seconds_per_char = 1, 0.02
    engines = [cosyvoice(url) for _ in range(3)]
    results = await asyncio.gather(*(collect(e, segment("中文女")) for e in engines), return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 2 and all(isinstance(f, EngineFailed) and f.broke_off for f in failures), results
    assert "closed the answer before it finished" in str(failures[0])
    assert behaviour.out_of_memory == 2


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, "busy", EngineOverloaded),
        (500, "torch.OutOfMemoryError: CUDA out of memory", EngineOverloaded),
        (500, "Internal Server Error", EngineFailed),
        (502, "Bad Gateway", EngineUnavailable),
        (422, '{"detail": "spk_id missing"}', EngineRejected),
    ],
)
async def test_error_answers_map_onto_the_error_tree(status: int, body: str, error: type[Exception]) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(status, text=body))
    client = httpx.AsyncClient(base_url="http://engine.test", transport=transport)
    engine = cosyvoice(client)
    with pytest.raises(error) as caught:
        await collect(engine, segment("中文女"))
    assert str(status) in str(caught.value) and body[-40:] in str(caught.value)


async def test_a_kept_alive_connection_the_server_closed_is_tried_once_more() -> None:
    """uvicorn closes a connection after an error answer; the next request on it fails before any answer.
    It goes once more on a new connection; twice in a row is the server's silence."""
    attempts: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) % 3 != 2:  # 1st fails, 2nd answers; 4th fails, 5th answers ...
            raise httpx.ReadError("connection closed by the server")
        return httpx.Response(200, content=wav_bytes(tone(TEXT, 16000), 16000))

    client = httpx.AsyncClient(base_url="http://engine.test", transport=httpx.MockTransport(answer))
    engine = EmotiVoiceEngine("emoti", client, EmotiVoiceOptions())
    audio = np.concatenate(await collect(engine, segment("8051")))
    assert audio.size == tone(TEXT, 16000).size and len(attempts) == 2

    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection closed by the server")

    failing = httpx.AsyncClient(base_url="http://engine.test", transport=httpx.MockTransport(silent))
    with pytest.raises(EngineUnavailable, match="gave no answer"):
        await collect(EmotiVoiceEngine("emoti", failing, EmotiVoiceOptions()), segment("8051"))


async def test_refused_connection_is_unavailable() -> None:
    engine = cosyvoice(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable, match="unreachable"):
        await collect(engine, segment("中文女"))


async def test_silence_longer_than_the_read_timeout(
    stand_in: Callable[..., str], behaviour: Behaviour
) -> None:
    url = stand_in(cosyvoice_app)
    behaviour.seconds_per_char = 1.0
    engine = cosyvoice(default_client(url, read_timeout=0.2))
    with pytest.raises(EngineTimeout):
        await collect(engine, segment("中文女"))


async def test_leaving_early_closes_the_upstream_request(
    stand_in: Callable[..., str], behaviour: Behaviour
) -> None:
    url = stand_in(cosyvoice_app)
    behaviour.seconds_per_char = 0.2
    engine = cosyvoice(url)
    await engine.load()
    stream: AsyncIterator[np.ndarray] = engine.synthesize(segment("中文女"))
    await anext(stream)
    assert behaviour.in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(50):
        if behaviour.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert behaviour.in_flight == 0 and behaviour.served == 0
    await engine.close()


@contextmanager
def api_over(
    tmp_path: Path,
    name: str,
    kind: str,
    url: str,
    options: dict[str, Any] | None = None,
    warm: bool = True,
    **fields: Any,
) -> Iterator[TestClient]:
    """The real app over one remote engine of ``kind`` at ``url``, its only and default engine
    (CosyVoice-300M-SFT's 中文女 unless ``options`` say otherwise)."""
    options = options or {"generation": 1, "voices": ["中文女"]}
    config = EngineSettings(name=name, kind=kind, url=url, options=options, **fields)
    settings = Settings(
        data_dir=tmp_path, embedded=False, engines=[config], default_engine=name, jobs={"workers": 0}
    )
    with ready_client(settings, warm=warm) as client:
        yield client


def test_a_configured_remote_engine_serves_the_api(
    stand_in: Callable[..., str], behaviour: Behaviour, tmp_path: Path
) -> None:
    url = stand_in(cosyvoice_app)
    with api_over(tmp_path, "cosy", "cosyvoice", url, queue_timeout=1) as client:
        body = {"model": "cosy", "input": "你好。再见。", "response_format": "wav", "emotion": "happy"}
        response = client.post("/v1/audio/speech", json=body)
        assert response.status_code == 200, response.text
        assert response.headers["x-voxserve-ignored"] == "emotion"
        assert response.headers["x-voxserve-voice"] == "%E4%B8%AD%E6%96%87%E5%A5%B3"  # 中文女
        audio = decode(response.content)
        assert audio.sample_rate == 22050 and audio.duration > 0.8
        assert [r["tts_text"] for r in behaviour.requests] == ["你好。", "再见。"]
        down = client.post("/v1/audio/speech", json={"model": "cosy", "input": "你好。"})
        assert down.status_code == 200
        (engine,) = client.get("/v1/engines").json()["engines"]
        (instance,) = engine["instances"]
        assert engine["name"] == "cosy" and engine["sample_rate"] == 22050 and not engine["instructions"]
        assert instance["url"] == url and instance["healthy"] and instance["adaptive"]
        assert instance["requests"] == 3 and instance["errors"] == 0 and instance["latency_ms_p95"] > 0
        metrics = client.get("/metrics").text
        labels = f'engine="cosy",role="primary",url="{url}"'
        assert f"voxserve_instance_healthy{{{labels}}} 1.0" in metrics
        assert f"voxserve_instance_requests_total{{{labels}}} 3.0" in metrics
        assert f"voxserve_instance_in_flight{{{labels}}} 0.0" in metrics
        behaviour.up = False
        failed = client.post("/v1/audio/speech", json={"model": "cosy", "input": "你好吗？"})
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "engine_overloaded"
        assert failed.headers["retry-after"] == "1"


def test_cloned_voices_reach_cosyvoice_with_the_normalized_audio_and_transcript(
    stand_in: Callable[..., str], behaviour: Behaviour, tmp_path: Path
) -> None:
    from tests.support.signals import GOOD

    prompt = tmp_path / "prompt.wav"
    prompt.write_bytes(GOOD)
    url = stand_in(lambda b: cosyvoice_app(b, Model(2, fixed_clone=True)))
    options = {"generation": 2, "voices": {"narrator": {"audio": str(prompt), "text": "你好。"}}}
    with api_over(tmp_path, "cosy", "cosyvoice", url, options) as client:
        files = {"audio": ("me.wav", GOOD, "audio/wav")}
        with_transcript = client.post(
            "/v1/voices", data={"name": "me", "prompt_text": "今天天气很好。"}, files=files
        )
        assert with_transcript.status_code == 201, with_transcript.text
        other = {"reference_audio": ("you.mp3", GOOD[:44] + GOOD[44:][::-1], "audio/mpeg")}
        for body in (
            {"input": "你好。", "voice": "me"},
            {"input": "你好。", "voice": "me", "instructions": "用四川话说"},
        ):
            response = client.post("/v1/audio/speech", json={**body, "response_format": "wav"})
            assert response.status_code == 200 and decode(response.content).duration > 0.2
        assert client.post("/tts", data={"text": "你好。"}, files=other).status_code == 200
    zero_shot, instruct2, cross_lingual = behaviour.requests
    assert zero_shot["path"] == "/inference_zero_shot" and zero_shot["prompt_text"] == "今天天气很好。"
    assert (
        instruct2["path"] == "/inference_instruct2"
        and instruct2["instruct_text"] == "用四川话说<|endofprompt|>"
    )
    assert cross_lingual["path"] == "/inference_cross_lingual", "no transcript: cross-lingual cloning"
    for request in behaviour.requests:
        assert (request["prompt_rate"], request["prompt_channels"]) == (24000, 1)
        assert request["prompt_seconds"] == pytest.approx(5.0, abs=0.01)


def test_emotivoice_emotions_through_the_api(
    stand_in: Callable[..., str], behaviour: Behaviour, tmp_path: Path
) -> None:
    """EmotiVoice's prompt is free text: a label goes as the Chinese word its encoder knows, the engine's
    own words and free descriptions (seed 000's "开心中带点讽刺") as they are."""
    with api_over(tmp_path, "emoti", "emotivoice", stand_in(emotivoice_app), {"voices": ["8051"]}) as client:
        body = {"model": "emoti", "input": "你好。", "response_format": "wav"}
        for emotion in ("sad", "Happy", "开心", "开心中带点讽刺", "gleeful"):
            response = client.post("/v1/audio/speech", json={**body, "emotion": emotion})
            assert response.status_code == 200, response.text
            assert "x-voxserve-ignored" not in response.headers
        assert [r["prompt"] for r in behaviour.requests] == [
            "悲伤",
            "开心",
            "开心",
            "开心中带点讽刺",
            "gleeful",
        ]


def test_a_bare_500_for_one_input_does_not_eject_a_healthy_instance(
    stand_in: Callable[..., str], behaviour: Behaviour, tmp_path: Path
) -> None:
    """EmotiVoice answers an unknown speaker with a bare 500: that request's 502, the instance stays in."""
    app = emotivoice_app(behaviour, speakers=("8051",))
    url = stand_in(lambda _: app)
    options = {"voices": ["8051", "9999", "9998", "9997"]}
    with api_over(tmp_path, "emoti", "emotivoice", url, options, failures_to_eject=2) as client:
        body = {"model": "emoti", "input": "你好。", "response_format": "wav"}
        for voice in ("9999", "9999", "9998", "9997"):
            failed = client.post("/v1/audio/speech", json={**body, "voice": voice})
            assert failed.status_code == 502 and failed.json()["error"]["code"] == "engine_failed", (
                failed.text
            )
            assert "answered 500: Internal Server Error" in failed.json()["error"]["message"]
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"], "inputs' failures are not the instance's, however many"
        assert client.post("/v1/audio/speech", json=body).status_code == 200


def test_an_unreachable_engine_says_why_in_the_answer_readyz_engines_and_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the engine's URL: the process is still ready (its engines all live
    elsewhere), and the answer, /readyz, /v1/engines and the log each say what is wrong."""
    url = f"http://127.0.0.1:{free_port()}"
    with api_over(
        tmp_path, "cosy-down", "cosyvoice", url, warm=False, health_interval=0.05, failures_to_eject=1
    ) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["engines"]["cosy-down"]["status"] != "unavailable":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ready = client.get("/readyz")
        assert ready.status_code == 200, "a gateway whose engines are elsewhere can still take jobs"
        status = ready.json()["engines"]["cosy-down"]
        assert status["runs"] == "remote" and f"{url}: connection refused" in status["reason"]
        answer = client.post("/v1/audio/speech", json={"model": "cosy-down", "input": "你好。"})
        assert_error(answer, 503, "engine_unavailable", None, "engine 'cosy-down' cannot serve: ")
        assert (
            "connection refused (is the server running, and on that port?)"
            in answer.json()["error"]["message"]
        )
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert not instance["healthy"] and "connection refused" in instance["last_error"]
    assert any(
        "engine cosy-down at" in r.message and "is ejected: connection refused" in r.message
        for r in caplog.records
    )


def test_a_server_of_another_kind_is_ejected_asking_whether_the_kind_is_right(
    stand_in: Callable[..., str], tmp_path: Path
) -> None:
    """kind = "openai" pointed at a CosyVoice server: its 404 is the configuration's fault, not the
    client's (503, not 422), and the instance leaves the pool at once."""
    url = stand_in(cosyvoice_app)
    options = {"voices": ["alloy"], "sample_rate": 24000}
    with api_over(tmp_path, "wrong", "openai", url, options, health_interval=0.05) as client:
        answer = client.post("/v1/audio/speech", json={"model": "wrong", "input": "Hello.", "voice": "alloy"})
        assert_error(answer, 503, "engine_unavailable", None, "answered 404 to POST /v1/audio/speech")
        assert "is this the right kind of server for this engine" in answer.json()["error"]["message"]
        time.sleep(0.5)  # ten health checks: GET / answers, but the route is still not there
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert not instance["healthy"] and "right kind of server" in instance["last_error"]
        status = client.get("/readyz").json()["engines"]["wrong"]
        assert status["status"] == "unavailable" and "answered 404 to POST" in status["reason"]
        again = client.post("/v1/audio/speech", json={"model": "wrong", "input": "Hello.", "voice": "alloy"})
        assert_error(
            again, 503, "engine_unavailable", None, f"engine 'wrong' cannot serve: {url}: answered 404"
        )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "its host name does not resolve (DNS)"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
        (httpx.ConnectTimeout("timed out"), "no answer in time (ConnectTimeout)"),
        (httpx.RemoteProtocolError("Server disconnected"), "RemoteProtocolError: Server disconnected"),
    ],
)
def test_connection_failures_are_told_in_an_operators_words(error: httpx.HTTPError, said: str) -> None:
    assert unreachable(error).startswith(said)


def test_an_instance_out_for_a_missing_route_returns_once_the_route_answers(
    stand_in: Callable[..., str], behaviour: Behaviour, tmp_path: Path
) -> None:
    """The server at the URL is replaced by one of the right kind (here: its route turns on)."""
    routed = {"on": False}

    def gated(behaviour: Behaviour) -> FastAPI:
        app = openai_app(behaviour)

        @app.middleware("http")
        async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if request.url.path == "/v1/audio/speech" and not routed["on"]:
                return Response(status_code=404)
            return await call_next(request)

        return app

    url = stand_in(gated)
    options = {"voices": ["alloy"], "sample_rate": 24000}
    body = {"model": "o", "input": "Hello.", "voice": "alloy"}
    with api_over(
        tmp_path, "o", "openai", url, options, health_interval=0.05, successes_to_return=1
    ) as client:
        assert client.post("/v1/audio/speech", json=body).status_code == 503
        routed["on"] = True
        deadline = time.monotonic() + 5
        while not client.get("/v1/engines").json()["engines"][0]["instances"][0]["healthy"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post("/v1/audio/speech", json=body).status_code == 200
    assert all(call.get("input") == "Hello." for call in behaviour.requests), (
        "the route checks carried no text"
    )


def test_a_404_for_what_the_request_named_is_that_requests_and_ejects_nothing(
    stand_in: Callable[..., str], behaviour: Behaviour, tmp_path: Path
) -> None:
    """An upstream voxserve or OpenAI answers 404 for a voice or model it lacks: the route is there
    (asked again without a body, it wants the fields), so it is the request's 422, not an outage."""

    def picky(behaviour: Behaviour) -> FastAPI:
        app = openai_app(behaviour)

        @app.middleware("http")
        async def lacks(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if b"retired" in await request.body():
                return JSONResponse(
                    {"error": {"code": "unknown_voice", "message": "no voice 'retired'"}}, 404
                )
            return await call_next(request)

        return app

    url = stand_in(picky)
    options = {"voices": ["alloy", "retired"], "sample_rate": 24000}
    with api_over(tmp_path, "o", "openai", url, options, health_interval=0.05) as client:
        for _ in range(3):
            lacking = client.post("/v1/audio/speech", json={"model": "o", "input": "Hi.", "voice": "retired"})
            assert_error(lacking, 422, "engine_rejected", None, "no voice 'retired'")
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"]
        good = client.post("/v1/audio/speech", json={"model": "o", "input": "Hi.", "voice": "alloy"})
        assert good.status_code == 200, good.text
