"""GLM-TTS's Gradio interface against a real Gradio app with upstream's ``run_inference``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.instances import glmtts_apps
from harness.server import free_port

from tests.support.api import assert_error, ready_client
from tests.support.audio import decode
from tests.support.signals import GOOD, dominant_frequency, voice_like
from voxserve.audio.pcm import wav_bytes
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines import Engine, SegmentRequest
from voxserve.engines.glmtts import GlmTtsGradioEngine
from voxserve.engines.kind import BuildContext
from voxserve.errors import EngineOverloaded, EngineUnavailable
from voxserve.registry import build_engine, check_engines
from voxserve.routing import Pool

MakePool = Callable[..., Awaitable[Pool]]
PROMPT_TEXT = "他当时还跟线下其他的站姐吵架，然后，打架进局子了。"


@pytest.fixture(scope="module")
def glm_gradio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two apps, started together: upstream's (three calls at once allowed, two fit in memory), and one
    that answers at 32 kHz whatever it is asked (as upstream's app did before it returned the rate asked)."""
    records = tmp_path_factory.mktemp("glm-gradio")
    current = ["--concurrency", "3", "--capacity", "2", "--seconds-per-char", "0.02"]
    fixed_rate = ["--answer-rate", "32000"]
    with glmtts_apps(
        [*current, "--record", str(records / "current.jsonl")],
        [*fixed_rate, "--record", str(records / "fixed_rate.jsonl")],
        ["--load-seconds", "2", "--record", str(records / "loading.jsonl")],
        logs=records,
    ) as (current_url, fixed_url, loading_url):
        yield {"current": current_url, "fixed_rate": fixed_url, "loading": loading_url, "records": records}


def calls(glm_gradio: dict[str, Any], app: str) -> list[dict[str, Any]]:
    path = glm_gradio["records"] / f"{app}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def prompt(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.wav"
    path.write_bytes(wav_bytes(voice_like(3.0, 44100), 44100))
    return path


def gradio_settings(urls: list[str], prompt: Path, **fields: Any) -> EngineSettings:
    voices = {"jiayan": {"audio": str(prompt), "text": PROMPT_TEXT}}
    return EngineSettings(name="glm", kind="glmtts", instances=urls, options={"voices": voices}, **fields)


@pytest.fixture
async def make_pool(tmp_path: Path, prompt: Path) -> AsyncIterator[MakePool]:
    """Loads GLM-TTS pools over the given app URLs; all closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(*urls: str, warm: bool = True, **fields: Any) -> Pool:
            """A loaded pool; ``warm``: once an instance has answered its warm-up call."""
            context = BuildContext(ThreadPoolExecutor(1), tmp_path, 1)
            pool = build_engine(gradio_settings(list(urls), prompt, **fields), context)
            assert isinstance(pool, Pool)
            await pool.load()
            stack.push_async_callback(pool.close)
            for _ in range(300):
                if pool.ready or not warm:
                    break
                await asyncio.sleep(0.05)
            assert pool.ready or not warm, "no instance warmed up"
            return pool

        yield make


async def speak(engine: Engine, text: str, seed: int | None = 7) -> np.ndarray:
    request = SegmentRequest(text=text, language="zh", voice="jiayan", seed=seed)
    return np.concatenate([chunk async for chunk in engine.synthesize(request)])


async def test_run_inference_gets_upstreams_arguments(
    glm_gradio: dict[str, Any], make_pool: MakePool
) -> None:
    pool = await make_pool(glm_gradio["current"])
    before = len(calls(glm_gradio, "current"))
    audio = await speak(pool, "你好，世界。")
    call = calls(glm_gradio, "current")[before]
    asked = {k: call[k] for k in ("prompt_text", "input_text", "seed", "sample_rate", "use_cache")}
    assert asked == {
        "prompt_text": PROMPT_TEXT,
        "input_text": "你好，世界。",
        "seed": 7,
        "sample_rate": 24000,
        "use_cache": True,
    }
    assert (call["prompt_rate"], call["prompt_channels"]) == (24000, 1), "the prompt went up converted"
    assert call["prompt_seconds"] == pytest.approx(3.0, abs=0.01)
    assert audio.size == pytest.approx(24000 * 0.08 * 6, abs=2)
    assert dominant_frequency(audio, 24000) == pytest.approx(207, abs=2), "the seed is heard"


async def test_seeded_and_deterministic(glm_gradio: dict[str, Any], make_pool: MakePool) -> None:
    pool = await make_pool(glm_gradio["current"])
    first, again = await speak(pool, "一二三", seed=None), await speak(pool, "一二三", seed=None)
    assert np.array_equal(first, again)
    assert dominant_frequency(first, 24000) == pytest.approx(242, abs=2), "upstream's default seed, 42"
    assert pool.capabilities.seeded


async def test_an_answer_at_another_rate_plays_at_the_right_speed(
    glm_gradio: dict[str, Any], make_pool: MakePool
) -> None:
    """The app answers 32 kHz though 24 kHz was configured: the same pitch and length, resampled."""
    pool = await make_pool(glm_gradio["fixed_rate"])
    audio = await speak(pool, "一二三四五", seed=50)
    assert calls(glm_gradio, "fixed_rate")[-1]["sample_rate"] == 24000
    assert audio.size / 24000 == pytest.approx(0.08 * 5, abs=0.005), "not 4/3 as long"
    assert dominant_frequency(audio, 24000) == pytest.approx(250, abs=3), "not 3/4 of the pitch"


async def test_out_of_gpu_memory_is_overload(glm_gradio: dict[str, Any], make_pool: MakePool) -> None:
    pool = await make_pool(glm_gradio["current"])
    engine = pool.instances[0].engine  # the instance itself: the pool would retry elsewhere
    assert isinstance(engine, GlmTtsGradioEngine)
    outcomes = await asyncio.gather(
        *(speak(engine, "十个字的一句话在这里") for _ in range(3)), return_exceptions=True
    )
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], EngineOverloaded), outcomes
    assert "Inference failed: CUDA out of memory" in str(failed[0])


async def test_no_server_is_unavailable_and_unhealthy(make_pool: MakePool) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    pool = await make_pool(url, attempts=1, warm=False)
    engine = pool.instances[0].engine
    assert isinstance(engine, GlmTtsGradioEngine) and "connection refused" in (await engine.health(1.0) or "")
    with pytest.raises(EngineUnavailable, match="no Gradio app answers"):
        await speak(engine, "你好")


def test_through_the_api_with_a_cloned_voice(
    glm_gradio: dict[str, Any], tmp_path: Path, prompt: Path
) -> None:
    config = gradio_settings([glm_gradio["current"]], prompt)
    settings = Settings(data_dir=tmp_path / "data", default_engine="glm", embedded=False, engines=[config])
    with ready_client(settings, raise_server_exceptions=False) as client:
        files = {"audio": ("me.wav", GOOD, "audio/wav")}
        assert client.post("/v1/voices", data={"name": "mute"}, files=files).status_code == 201
        body = {"input": "你好。", "voice": "mute", "response_format": "wav", "seed": 3}
        assert_error(
            client.post("/v1/audio/speech", json=body), 422, "unsupported_value", "voice", "prompt_text"
        )
        said = client.post("/v1/voices", data={"name": "said", "prompt_text": "今天天气很好。"}, files=files)
        assert said.status_code == 201, said.text
        response = client.post("/v1/audio/speech", json={**body, "voice": "said"})
        assert response.status_code == 200, response.text
        assert response.headers["x-voxserve-engine"] == "glm"
        audio = decode(response.content)
        assert audio.duration == pytest.approx(0.08 * 3 + 0.25, abs=0.05)
        call = calls(glm_gradio, "current")[-1]
        assert call["prompt_text"] == "今天天气很好。" and call["seed"] == 3
        assert call["prompt_seconds"] == pytest.approx(said.json()["seconds"], abs=0.01)


async def test_an_app_still_loading_stays_out_of_rotation_until_its_warm_up_answers(
    glm_gradio: dict[str, Any], make_pool: MakePool
) -> None:
    """Upstream's app loads its model on its first call: the instance is warmed with a short call and
    takes no request until that call has answered; then no request pays for the load."""
    before = len(calls(glm_gradio, "loading"))
    pool = await make_pool(glm_gradio["loading"], warm=False)
    engine = pool.instances[0].engine
    assert isinstance(engine, GlmTtsGradioEngine)
    assert not pool.ready and not engine.ready, "loading: out of rotation"
    assert [instance["healthy"] for instance in pool.snapshot()] == [False], "/v1/engines shows it"
    started = asyncio.get_running_loop().time()
    audio = await speak(pool, "一二三四")  # waits in line for the warm instance
    assert asyncio.get_running_loop().time() - started >= 1.0, "it waited for the load, not a cold call"
    assert pool.ready and audio.size == pytest.approx(24000 * 0.08 * 4, abs=2)
    assert [instance["healthy"] for instance in pool.snapshot()] == [True]
    warm_up, request = calls(glm_gradio, "loading")[before:]
    assert (warm_up["input_text"], warm_up["loaded"]) == ("你好。", True)
    assert (request["input_text"], request["loaded"]) == ("一二三四", False)


def test_two_engines_at_different_rates_on_one_app_are_refused(prompt: Path) -> None:
    """The app reloads its model whenever the rate changes: two rates on one app would reload it on
    every other call."""
    voices = {"jiayan": {"audio": str(prompt), "text": PROMPT_TEXT}}
    engines = [
        {
            "name": name,
            "kind": "glmtts",
            "url": "http://gpu1:8048/",
            "options": {"voices": voices, "sample_rate": rate},
        }
        for name, rate in (("glm24", 24000), ("glm32", 32000))
    ]
    shared = "'glm32' and 'glm24' use the server at http://gpu1:8048/ with different sample_rate"
    with pytest.raises(ValueError, match=re.escape(shared + " (32000 and 24000)")):
        check_engines(Settings(engines=engines))
    engines[1]["url"] = "http://gpu2:8048"
    check_engines(Settings(engines=engines))
