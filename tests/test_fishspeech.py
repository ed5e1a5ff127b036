"""fish-speech's HTTP API, against a stand-in that answers (and fails) as its server does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from harness.servers.engines import Behaviour, serving, tone
from harness.servers.fishspeech import SAMPLE_RATE, fishspeech_app

from tests.support.api import SPEECH, assert_error, ready_client
from tests.support.audio import decode
from tests.support.signals import GOOD
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines.fishspeech import FishSpeechEngine, FishSpeechOptions, raw_wav_stream
from voxserve.registry import check_engine

TEXT = "The quick brown fox jumps over the lazy dog."


@contextmanager
def over(tmp_path: Path, behaviour: Behaviour, options: dict[str, Any], **server: Any) -> Iterator[Any]:
    with serving(fishspeech_app(behaviour, **server)) as url:
        config = EngineSettings(name="fish", kind="fishspeech", url=url, options=options)
        settings = Settings(
            data_dir=tmp_path, embedded=False, engines=[config], default_engine="fish", jobs={"workers": 0}
        )
        with ready_client(settings) as client:
            yield client


def speak(client: Any, **body: Any) -> Any:
    return client.post(SPEECH, json={"model": "fish", "input": TEXT, "response_format": "wav", **body})


def test_a_stored_reference_streams_at_44_1_khz(tmp_path: Path) -> None:
    behaviour = Behaviour()
    options = {"voices": ["narrator"], "api_key": "s3cret", "temperature": 0.7}
    with over(tmp_path, behaviour, options, api_key="s3cret", stored=("narrator",)) as client:
        response = speak(client, seed=11, stream=True)
        assert response.status_code == 200, response.text
        audio = decode(response.content)
        assert audio.sample_rate == SAMPLE_RATE
        expected = tone(TEXT, SAMPLE_RATE).size / SAMPLE_RATE + 0.25
        assert audio.duration == pytest.approx(expected, abs=0.05), "raw samples read as 44.1 kHz"
        assert np.sqrt(np.mean(audio.samples**2)) > 0.01
    (request,) = behaviour.requests
    assert request == {
        "text": TEXT,
        "seed": 11,
        "reference_id": "narrator",
        "voice": "narrator",
        "references": [],
        "streaming": True,
        "use_memory_cache": "on",
        "temperature": 0.7,
        "authorization": "Bearer s3cret",
    }


def test_prompt_voices_and_cloned_voices_go_inline_with_their_text(tmp_path: Path) -> None:
    behaviour = Behaviour()
    prompt = tmp_path / "prompt.wav"
    prompt.write_bytes(GOOD)
    options = {"voices": {"ada": {"audio": str(prompt), "text": "Hello, this is Ada."}}}
    with over(tmp_path, behaviour, options) as client:
        assert speak(client, input="Hi.").status_code == 200
        files = {"audio": ("me.wav", GOOD, "audio/wav")}
        assert client.post("/v1/voices", data={"name": "mute"}, files=files).status_code == 201
        assert_error(speak(client, voice="mute"), 422, "unsupported_value", "voice", "prompt_text")
        said = client.post("/v1/voices", data={"name": "me", "prompt_text": "It is sunny."}, files=files)
        assert said.status_code == 201
        assert speak(client, voice="me", input="Hi.").status_code == 200
    configured, cloned = behaviour.requests
    for request, text in ((configured, "Hello, this is Ada."), (cloned, "It is sunny.")):
        (reference,) = request["references"]
        assert reference["text"] == text and reference["rate"] == 24000
        assert reference["seconds"] == pytest.approx(5.0, abs=0.01) and request["reference_id"] is None


def test_an_answer_that_stops_short_is_that_requests_502(tmp_path: Path) -> None:
    behaviour = Behaviour(break_after_chunks=0)
    with over(tmp_path, behaviour, {"voices": ["narrator"]}, stored=("narrator",)) as client:
        assert_error(speak(client), 502, "engine_failed", None, "closed the answer before it finished")
        assert len(behaviour.requests) == 2
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"]


async def test_health_carries_the_key_and_a_header_is_skipped_if_one_comes() -> None:
    with serving(fishspeech_app(Behaviour(), api_key="k")) as url:
        good = FishSpeechEngine(
            "fish", httpx.AsyncClient(base_url=url), FishSpeechOptions(voices=["a"], api_key="k")
        )
        bad = FishSpeechEngine(
            "fish", httpx.AsyncClient(base_url=url), FishSpeechOptions(voices=["a"], api_key="x")
        )
        assert await good.health() is None and await bad.health() == "GET /v1/health answered 401"
        await good.close()
        await bad.close()
    samples = (np.arange(200, dtype="<i2") * 100).tobytes()
    for body in (samples, b"RIFF" + bytes(40) + samples):
        transport = httpx.MockTransport(lambda _, body=body: httpx.Response(200, content=body))
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://fish.test/")
            chunks = [chunk async for chunk in raw_wav_stream(response)]
        np.testing.assert_allclose(np.concatenate(chunks) * 32768, np.arange(200) * 100)


def test_reference_ids_its_server_would_refuse_fail_when_settings_load() -> None:
    """Its server checks an id after the 200 (``_validate_id``): every answer would break."""
    table = EngineSettings(
        name="fish", kind="fishspeech", url="http://x", options={"voices": ["ok id", "旁白", "host.v2"]}
    )
    with pytest.raises(ValueError, match=re.escape("'旁白', 'host.v2': fish-speech names references with")):
        check_engine(table)
