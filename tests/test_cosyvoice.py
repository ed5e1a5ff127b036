"""CosyVoice by generation, against a stand-in of upstream's runtime that fails where upstream fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.servers.cosyvoice import Model, cosyvoice_app
from harness.servers.engines import Behaviour, serving, tone

from tests.support.api import SPEECH, assert_error, ready_client
from tests.support.audio import decode
from tests.support.signals import GOOD
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines.cosyvoice import CosyVoiceOptions
from voxserve.engines.cosyvoice.options import Generation
from voxserve.registry import check_engine

PROMPT_TEXT = "希望你以后能够做的比我还好呦。"
TEXT = "今天天气很好，我们一起去公园散步吧。"


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.wav"
    path.write_bytes(GOOD)
    return path


def prompt_voices(path: Path) -> dict[str, Any]:
    return {"xiaoyu": {"audio": str(path), "text": PROMPT_TEXT}}


@contextmanager
def over(
    tmp_path: Path, server: Model, behaviour: Behaviour, fields: dict[str, Any] | None = None, **options: Any
) -> Iterator[Any]:
    """The real app over one CosyVoice server running ``server``; ``fields`` of its ``[[engines]]`` table."""
    with serving(cosyvoice_app(behaviour, server)) as url:
        config = EngineSettings(name="cosy", kind="cosyvoice", url=url, options=options, **(fields or {}))
        settings = Settings(
            data_dir=tmp_path, embedded=False, engines=[config], default_engine="cosy", jobs={"workers": 0}
        )
        with ready_client(settings) as client:
            yield client


def speak(client: Any, **body: Any) -> Any:
    return client.post(SPEECH, json={"model": "cosy", "input": TEXT, "response_format": "wav", **body})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"voices": ["中文女"]}, "say which CosyVoice the server runs: generation = 1, 2 or 3"),
        (
            {"model": "iic/CosyVoice2-0.5B", "voices": ["中文女", "中文男"]},
            "CosyVoice2 ships no preset speakers ('中文女', '中文男' would fail on its server with KeyError)",
        ),
        ({"generation": 3, "voices": ["中文女"]}, 'voices = { name = { audio = "/voices/name.wav"'),
        (
            {"generation": 2, "voices": {"a": {"audio": __file__, "text": "hi"}}, "sample_rate": 22050},
            "CosyVoice2 answers at 24000 Hz; sample_rate = 22050",
        ),
        (
            {"model": "iic/CosyVoice2-0.5B", "generation": 3, "voices": ["x"]},
            "is CosyVoice 2, not generation = 3",
        ),
        ({"generation": 1, "voices": ["中文女"], "api": "triton"}, "serves CosyVoice2 and CosyVoice3"),
        (
            {
                "generation": 3,
                "api": "triton",
                "voices": {
                    "a": {"audio": __file__, "text": "你好。"},
                    "b": {"audio": __file__, "text": "你好。"},
                },
            },
            "voices 'a' and 'b' have the same transcript",
        ),
        (
            {"generation": 1, "voices": ["中文女"], "triton_protocol": "grpc"},
            "triton_protocol do not apply to api = 'runtime'",
        ),
    ],
)
def test_tables_that_cannot_work_fail_when_settings_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_engine(EngineSettings(name="cosy", kind="cosyvoice", url="http://gpu1:50000", options=options))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("model", "generation", "rate"),
    [
        ("iic/CosyVoice-300M-SFT", 1, 22050),
        ("iic/CosyVoice2-0.5B", 2, 24000),
        ("FunAudioLLM/Fun-CosyVoice3-0.5B-2512", 3, 24000),
    ],
)
def test_the_model_name_says_the_generation_and_its_rate(model: str, generation: int, rate: int) -> None:
    voices: Any = ["中文女"] if generation == 1 else {"a": {"audio": __file__, "text": "hi"}}
    options = CosyVoiceOptions(model=model, voices=voices)
    assert options.model_generation == Generation(generation)  # type: ignore[arg-type]
    assert options.model_generation.sample_rate == rate


def test_cosyvoice3_texts_are_written_as_upstream_examples_write_them() -> None:
    """``example.py``'s cosyvoice3_example: the system prompt, then ``<|endofprompt|>``."""
    v3, v2 = Generation(3), Generation(2)
    assert v3.prompt_text(PROMPT_TEXT) == f"You are a helpful assistant.<|endofprompt|>{PROMPT_TEXT}"
    assert v3.cross_lingual_text("你好。") == "You are a helpful assistant.<|endofprompt|>你好。"
    assert (
        v3.instruct_text("请用广东话表达。") == "You are a helpful assistant. 请用广东话表达。<|endofprompt|>"
    )
    assert v2.instruct_text("用四川话说这句话") == "用四川话说这句话<|endofprompt|>"
    assert v2.prompt_text(PROMPT_TEXT) == PROMPT_TEXT and v2.cross_lingual_text("你好。") == "你好。"
    already = "You are a helpful assistant.<|endofprompt|>好"
    assert v3.prompt_text(already) == already, "never twice"


@pytest.mark.parametrize("generation", [2, 3])
def test_prompt_voices_speak_at_24_khz_in_whole_sentences(
    tmp_path: Path, prompt_file: Path, generation: int
) -> None:
    """A configured voice is a recording and its transcript; the comma does not cut the sentence."""
    behaviour = Behaviour()
    model = Model(generation, fixed_clone=True)
    with over(tmp_path, model, behaviour, generation=generation, voices=prompt_voices(prompt_file)) as client:
        response = speak(client, stream=True)
        assert response.status_code == 200, response.text
        audio = decode(response.content)
        assert audio.sample_rate == 24000
        expected = tone(TEXT, 24000).size / 24000 + 0.25  # the sentence's pause after it
        assert audio.duration == pytest.approx(expected, abs=0.05), "at its own rate: neither slow nor low"
        instructed = speak(client, instructions="用四川话说这句话", input="你好。")
        assert instructed.status_code == 200, instructed.text
    zero_shot, instruct2 = behaviour.requests
    assert zero_shot["path"] == "/inference_zero_shot" and zero_shot["tts_text"] == TEXT, "one call, whole"
    system = "You are a helpful assistant." if generation == 3 else ""
    assert zero_shot["prompt_text"] == (f"{system}<|endofprompt|>{PROMPT_TEXT}" if system else PROMPT_TEXT)
    assert instruct2["path"] == "/inference_instruct2"
    assert instruct2["instruct_text"] == f"{system + ' ' if system else ''}用四川话说这句话<|endofprompt|>"
    assert (zero_shot["prompt_rate"], zero_shot["prompt_channels"]) == (24000, 1)


def test_cosyvoice3_clones_without_a_transcript_cross_lingually(tmp_path: Path, prompt_file: Path) -> None:
    behaviour = Behaviour()
    model = Model(3, fixed_clone=True)
    with over(tmp_path, model, behaviour, generation=3, voices=prompt_voices(prompt_file)) as client:
        added = client.post("/v1/voices", data={"name": "me"}, files={"audio": ("me.wav", GOOD, "audio/wav")})
        assert added.status_code == 201, added.text
        response = speak(client, voice="me", input="你好。")
        assert response.status_code == 200, response.text
    (request,) = behaviour.requests
    assert request["path"] == "/inference_cross_lingual"
    assert request["tts_text"] == "You are a helpful assistant.<|endofprompt|>你好。"


def test_a_server_that_fails_on_an_input_is_that_requests_502_and_stays_in_rotation(
    tmp_path: Path, prompt_file: Path
) -> None:
    """Upstream's server at ace7c47 cannot clone (issue #1794): each answer stops after its 200. That is
    this request's failure after one more try, not an overloaded GPU: no ejection, no lower limit."""
    behaviour = Behaviour()
    with over(tmp_path, Model(2), behaviour, generation=2, voices=prompt_voices(prompt_file)) as client:
        limit_before = client.get("/v1/engines").json()["engines"][0]["instances"][0]["limit"]
        failed = speak(client)
        assert_error(failed, 502, "engine_failed", None, "closed the answer before it finished")
        assert "again when asked a second time" in failed.json()["error"]["message"]
        assert len(behaviour.requests) == 2, "asked once more, then given up"
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"] and instance["limit"] == limit_before
        assert client.get("/readyz").status_code == 200


def test_a_bad_input_under_load_is_still_its_own_502(tmp_path: Path) -> None:
    """A speaker the model lacks breaks its answer while other requests stream: that request's 502 after
    one more try, not 30 s of retries; the others are served."""
    behaviour = Behaviour(seconds_per_char=0.03)
    with over(tmp_path, Model(1), behaviour, generation=1, voices=["中文女", "粤语男"]) as client:
        with ThreadPoolExecutor(5) as threads:
            good = [threads.submit(speak, client, input=f"第{n}句话说得慢一点。") for n in range(4)]
            bad = threads.submit(speak, client, voice="粤语男", input="你好。")
            assert_error(bad.result(), 502, "engine_failed", None, "closed the answer before it finished")
            assert all(answer.result().status_code == 200 for answer in good)
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"]
    assert [r["spk_id"] for r in behaviour.requests].count("粤语男") == 2


def test_bad_inputs_one_after_another_are_each_their_own_502(tmp_path: Path) -> None:
    """An instance alone with a request cannot be out of memory because of load: however many inputs
    fail there, each is its request's 502 at once, and the instance keeps its limit and its place."""
    behaviour = Behaviour(break_after_chunks=0)
    with over(tmp_path, Model(1), behaviour, generation=1, voices=["中文女"]) as client:
        limit = client.get("/v1/engines").json()["engines"][0]["instances"][0]["limit"]
        for n in range(4):
            started = time.monotonic()
            assert_error(
                speak(client, input=f"第{n}句话。"), 502, "engine_failed", None, "before it finished"
            )
            assert time.monotonic() - started < 5, "asked twice, not retried until the deadline"
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"] and instance["limit"] == limit
    assert len(behaviour.requests) == 8


def test_out_of_memory_under_load_is_backed_off_from(tmp_path: Path) -> None:
    """Answers of several requests breaking off while they run together are the GPU's: overload, so the
    limit comes down and every request is served, none failed for its input."""
    behaviour = Behaviour(capacity=1, seconds_per_char=0.05)
    with over(tmp_path, Model(1), behaviour, generation=1, voices=["中文女"]) as client:
        with ThreadPoolExecutor(4) as threads:
            answers = list(threads.map(lambda n: speak(client, input=f"第{n}句话说完了。"), range(4)))
        assert [answer.status_code for answer in answers] == [200] * 4, [a.text for a in answers]
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"] and instance["limit"] == 1
    assert behaviour.out_of_memory >= 1 and behaviour.served == 4


def test_cosyvoice1_refuses_what_its_model_would_fail_on(tmp_path: Path) -> None:
    behaviour = Behaviour()
    with over(tmp_path, Model(1), behaviour, model="iic/CosyVoice-300M-SFT", voices=["中文女"]) as client:
        refused = speak(client, instructions="用四川话说这句话")
        assert_error(refused, 422, "unsupported_value", "instructions", "only as CosyVoice-300M-Instruct")
        assert behaviour.requests == [], "before any engine time"
        response = speak(client, input="你好。")
        assert response.status_code == 200 and decode(response.content).sample_rate == 22050
    assert behaviour.requests[0]["path"] == "/inference_sft"


def test_cosyvoice1_instruct_takes_instructions_with_its_speakers_only(tmp_path: Path) -> None:
    behaviour = Behaviour()
    model = Model(1, instruct=True, fixed_clone=True)
    with over(tmp_path, model, behaviour, model="iic/CosyVoice-300M-Instruct", voices=["中文男"]) as client:
        response = speak(client, input="你好。", instructions="A calm narrator.")
        assert response.status_code == 200, response.text
        added = client.post("/v1/voices", data={"name": "me"}, files={"audio": ("me.wav", GOOD, "audio/wav")})
        assert added.status_code == 201
        refused = speak(client, voice="me", instructions="A calm narrator.")
        assert_error(refused, 422, "unsupported_value", "instructions", "only with its own voices")
    (request,) = behaviour.requests
    assert request == {
        "tts_text": "你好。",
        "path": "/inference_instruct",
        "spk_id": "中文男",
        "instruct_text": "A calm narrator.<|endofprompt|>",
    }


def test_the_stand_in_fails_as_upstream_does() -> None:
    """What the adapter is kept from sending, upstream's server does not survive either."""
    v2, v3 = Model(2, fixed_clone=True), Model(3, fixed_clone=True)
    with pytest.raises(KeyError):
        v2.speaker("中文女")
    with pytest.raises(AssertionError, match="<\\|endofprompt\\|> not detected"):
        v3.llm("你好。", PROMPT_TEXT)
    v3.llm("你好。", f"You are a helpful assistant.<|endofprompt|>{PROMPT_TEXT}")
    with pytest.raises(TypeError, match="Invalid file: tensor"):
        Model(3).prompt()
    assert v3.sentences("你好。再见！") == ["你好。", "再见！"]
    assert np.isclose(v2.sample_rate / Model(1).sample_rate, 24000 / 22050)
