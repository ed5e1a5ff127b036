"""GLM-TTS's batch interface against a stand-in with upstream's command line, jsonl and output layout."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from harness.instances import glmtts_checkout

from tests.support.api import assert_error, ready_client, submit, wait_for
from tests.support.audio import decode
from tests.support.signals import GOOD, tone
from voxserve.audio import FORMATS, StreamEncoder
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines import SegmentRequest
from voxserve.engines.glmtts import GlmTtsBatchEngine
from voxserve.engines.kind import BuildContext
from voxserve.errors import EngineOverloaded, EngineTimeout, EngineUnavailable
from voxserve.registry import build_engine

PROMPT_TEXT = "他当时还跟线下其他的站姐吵架，然后，打架进局子了。"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return glmtts_checkout(tmp_path / "GLM-TTS")


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where each run of the script records itself."""
    directory = tmp_path / "runs"
    directory.mkdir()
    monkeypatch.setenv("GLMTTS_RECORD_DIR", str(directory))
    return directory


def recorded(runs: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(runs.iterdir())]


def texts(run: dict[str, Any]) -> list[str]:
    return [item["syn_text"] for item in run["items"]]


@pytest.fixture
def prompt_mp3(tmp_path: Path) -> Path:
    """A 44.1 kHz MP3 prompt, as users have them: it must reach GLM-TTS as 24 kHz mono s16 WAV."""
    encoder = StreamEncoder(FORMATS["mp3"], 24000, 44100)
    path = tmp_path / "speaker.mp3"
    path.write_bytes(encoder.write(tone(3.0)) + encoder.finish())
    return path


def batch_settings(checkout: Path, prompt: Path, **options: Any) -> EngineSettings:
    table = {
        "interface": "batch",
        "workdir": str(checkout),
        "python": sys.executable,
        "voices": {"speaker": {"audio": str(prompt), "text": PROMPT_TEXT}},
        "timeout": 20,
        **options,
    }
    return EngineSettings(name="glm", kind="glmtts", queue_timeout=60, options=table)


@pytest.fixture
async def engine(tmp_path: Path, checkout: Path, prompt_mp3: Path) -> AsyncIterator[GlmTtsBatchEngine]:
    engine = build_engine(
        batch_settings(checkout, prompt_mp3), BuildContext(ThreadPoolExecutor(1), tmp_path, 1)
    )
    assert isinstance(engine, GlmTtsBatchEngine)
    await engine.load()
    yield engine
    await engine.close()


def requests(*texts: str) -> list[SegmentRequest]:
    return [SegmentRequest(text=text, language="zh", voice="speaker") for text in texts]


def assert_clean(checkout: Path) -> None:
    """A run leaves nothing of its own in the checkout."""
    assert list((checkout / "examples").iterdir()) == []
    outputs = checkout / "outputs" / "pretrain_voxserve"
    assert not outputs.exists() or list(outputs.iterdir()) == []


def test_the_stand_in_refuses_the_wrapper_flags_as_upstream_does(checkout: Path) -> None:
    """Upstream's parser knows five options: the seed's --input_text style is exit 2."""
    script = str(checkout / "glmtts_inference.py")
    run = subprocess.run(
        [sys.executable, script, "--input_text=你好", "--seed=42"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2 and "unrecognized arguments: --input_text=你好 --seed=42" in run.stderr


async def test_one_run_for_all_segments_in_upstreams_layout(
    engine: GlmTtsBatchEngine, checkout: Path, runs: Path, prompt_mp3: Path
) -> None:
    said = ["你好，世界。", "--data=evil $(touch pwned)", "第三段。"]
    audio = [chunk async for chunk in engine.synthesize_batch(requests(*said))]
    assert [a.size for a in audio] == [int(24000 * 0.08 * len(text)) for text in said]
    assert all(np.abs(a).max() > 0.25 for a in audio), "each segment is the tone, not silence"
    [run] = recorded(runs)
    data = run["argv"][0].removeprefix("--data=")
    assert run["argv"] == [f"--data={data}", "--exp_name=_voxserve", "--sample_rate=24000"]
    assert run["cwd"] == str(checkout) and texts(run) == said and run["gpu"] is None
    assert [item["uttid"] for item in run["items"]] == ["000000", "000001", "000002"]
    assert {item["prompt_text"] for item in run["items"]} == {PROMPT_TEXT}
    prompt = decode(Path(run["items"][0]["prompt_speech"]).read_bytes())
    assert prompt.sample_rate == 24000 and prompt.duration == pytest.approx(3.0, abs=0.06)
    assert not (checkout / "pwned").exists()
    assert_clean(checkout)


async def test_an_item_that_fails_ends_the_batch_at_that_segment(
    engine: GlmTtsBatchEngine, checkout: Path
) -> None:
    """Upstream logs a failed item and exits 0; the missing file is that segment's error, in its words."""
    made: list[np.ndarray] = []
    with pytest.raises(EngineUnavailable) as caught:
        async for audio in engine.synthesize_batch(requests("一二三。", "this will fail", "四五六。")):
            made.append(audio)
    assert len(made) == 1
    assert "failed on segment 2 of 3" in str(caught.value)
    assert "Error processing 000001: the model could not read this text" in str(caught.value)
    assert_clean(checkout)


async def test_out_of_gpu_memory_in_an_item_is_overload(engine: GlmTtsBatchEngine) -> None:
    with pytest.raises(EngineOverloaded, match="CUDA out of memory"):
        _ = [audio async for audio in engine.synthesize_batch(requests("oom"))]


async def test_a_run_that_dies_is_its_exit_and_stderr(
    engine: GlmTtsBatchEngine, checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.rmtree(checkout / "ckpt" / "llm")  # the models went away after the check at load
    with pytest.raises(EngineUnavailable, match=r"(?s)exited with 1: .*ckpt/llm does not exist"):
        _ = [audio async for audio in engine.synthesize(requests("一二三")[0])]
    assert_clean(checkout)


async def test_a_checkout_without_models_does_not_load(tmp_path: Path, prompt_mp3: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    engine = build_engine(batch_settings(bare, prompt_mp3), BuildContext(ThreadPoolExecutor(1), tmp_path, 1))
    with pytest.raises(EngineUnavailable, match=r"not a GLM-TTS checkout .*glmtts_inference.py"):
        await engine.load()


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_a_run_nobody_waits_for_is_killed_and_cleaned(
    engine: GlmTtsBatchEngine, checkout: Path, runs: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv("GLMTTS_LOAD_SECONDS", "30")
    engine.options = engine.options.model_copy(update={"timeout": 1.0})

    async def consume() -> None:
        _ = [audio async for audio in engine.synthesize_batch(requests("一二三。", "四五六。"))]

    task = asyncio.create_task(consume())
    while not any(runs.iterdir()):
        await asyncio.sleep(0.02)
    if how == "cancel":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises(EngineTimeout, match="made no segment in 1 s; killed"):
            await task
    [run] = recorded(runs)
    assert not Path(f"/proc/{run['pid']}").exists()
    assert_clean(checkout)
    assert engine._free == [""], "the GPU slot is free again"


async def test_one_batch_at_a_time_per_gpu(
    tmp_path: Path, checkout: Path, prompt_mp3: Path, runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLMTTS_LOAD_SECONDS", "0.3")
    config = batch_settings(checkout, prompt_mp3, gpus=[0, 1])
    engine = build_engine(config, BuildContext(ThreadPoolExecutor(1), tmp_path, 1))
    assert isinstance(engine, GlmTtsBatchEngine)
    await engine.load()

    async def batch(text: str) -> int:
        return len([audio async for audio in engine.synthesize_batch(requests(text, text))])

    assert await asyncio.gather(*(batch(text) for text in ["一", "二", "三", "四"])) == [2, 2, 2, 2]
    by_gpu = {g: sorted((r["started"], r["ended"]) for r in recorded(runs) if r["gpu"] == g) for g in "01"}
    assert [len(spans) for spans in by_gpu.values()] == [2, 2], "the batches are spread over both GPUs"
    for first, second in by_gpu.values():
        assert first[1] <= second[0], "each GPU runs one batch at a time"
    assert by_gpu["0"][0][0] < by_gpu["1"][0][1] and by_gpu["1"][0][0] < by_gpu["0"][0][1], "GPUs overlap"


@pytest.fixture
def app_client(tmp_path: Path, checkout: Path, prompt_mp3: Path, runs: Path) -> Iterator[TestClient]:
    """The real app over the batch engine alone (a GLM-TTS install with no server running)."""
    config = batch_settings(checkout, prompt_mp3)
    settings = Settings(
        data_dir=tmp_path / "data",
        default_engine="glm",
        embedded=False,
        engines=[config],
        jobs={"retry_base_seconds": 0.05},
    )
    with ready_client(settings, raise_server_exceptions=False) as client:
        yield client


def test_a_job_of_several_segments_is_one_process(app_client: TestClient, runs: Path, checkout: Path) -> None:
    job = submit(app_client, model="glm", seed=5)
    done = wait_for(app_client, job["id"], "succeeded", "failed", timeout=60)
    assert done["status"] == "succeeded", done
    assert done["progress"]["segments_total"] == 3
    [run] = recorded(runs)
    assert texts(run) == ["One two three.", "Four five six.", "Seven eight nine."]
    audio = decode(app_client.get(f"/v1/jobs/{job['id']}/audio").content)
    speech = sum(0.08 * len(text) for text in texts(run))
    assert audio.sample_rate == 24000 and audio.duration == pytest.approx(speech + 3 * 0.25, abs=0.1)
    assert_clean(checkout)
    (engine,) = app_client.get("/v1/engines").json()["engines"]
    assert not engine["seeded"] and engine["cloning"] and engine["clone_needs_transcript"]
    assert [(i["url"], i["requests"], i["in_flight"]) for i in engine["instances"]] == [("local", 1, 0)]
    assert 'voxserve_instance_requests_total{engine="glm",role="primary",url="local"} 1.0' in (
        app_client.get("/metrics").text
    )
    # the same request again comes from the segment cache: no run at all
    again = submit(app_client, model="glm", seed=5)
    assert wait_for(app_client, again["id"], "succeeded", "failed", timeout=60)["status"] == "succeeded"
    assert len(recorded(runs)) == 1


def test_a_cloned_voice_needs_its_transcript(app_client: TestClient, runs: Path) -> None:
    def add(name: str, **fields: str) -> dict[str, Any]:
        files = {"audio": ("me.wav", GOOD, "audio/wav")}
        response = app_client.post("/v1/voices", data={"name": name, **fields}, files=files)
        assert response.status_code == 201, response.text
        return dict(response.json())

    add("mute")
    body = {"model": "glm", "input": "你好。", "voice": "mute", "response_format": "wav"}
    assert_error(
        app_client.post("/v1/audio/speech", json=body), 422, "unsupported_value", "voice", "prompt_text"
    )
    assert not any(runs.iterdir()), "refused before any engine time"
    voice = add("said", prompt_text="今天天气很好。")
    response = app_client.post("/v1/audio/speech", json={**body, "voice": "said"})
    assert response.status_code == 200, response.text
    assert response.headers["x-voxserve-engine"] == "glm"
    [run] = recorded(runs)
    [item] = run["items"]
    assert item["syn_text"] == "你好。" and item["prompt_text"] == "今天天气很好。"
    prompt = decode(Path(item["prompt_speech"]).read_bytes())
    assert prompt.sample_rate == 24000 and prompt.duration == pytest.approx(voice["seconds"], abs=0.01)
