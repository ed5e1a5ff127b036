"""The GLM-TTS adapter against a script with the real command line's arguments."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio import decode
from tests.support.signals import tone
from voxserve.audio import FORMATS, StreamEncoder
from voxserve.config import EngineSettings
from voxserve.engines import Engine, SegmentRequest
from voxserve.engines.glmtts import GlmTtsEngine, GlmTtsOptions
from voxserve.engines.kind import BuildContext
from voxserve.engines.registry import build_engine
from voxserve.errors import EngineOverloaded, EngineTimeout, EngineUnavailable
from voxserve.routing import Pool

SCRIPT = Path(__file__).parent / "servers" / "glmtts_cli.py"


@pytest.fixture
def prompt_mp3(tmp_path: Path) -> Path:
    """A 44.1 kHz MP3 prompt, as users upload them: it must reach GLM-TTS as 24 kHz mono s16 WAV."""
    encoder = StreamEncoder(FORMATS["mp3"], 24000, 44100)
    path = tmp_path / "speaker.mp3"
    path.write_bytes(encoder.write(tone(3.0)) + encoder.finish())
    return path


def make_engine(tmp_path: Path, prompt: Path, timeout: float = 5) -> GlmTtsEngine:
    options = GlmTtsOptions(
        command=[sys.executable, str(SCRIPT)], voices={"speaker": prompt}, timeout=timeout
    )
    return GlmTtsEngine("glm", options, tmp_path / "work")


@pytest.fixture
async def engine(tmp_path: Path, prompt_mp3: Path) -> AsyncIterator[GlmTtsEngine]:
    engine = make_engine(tmp_path, prompt_mp3)
    await engine.load()
    yield engine
    await engine.close()


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "record.json"
    monkeypatch.setenv("GLMTTS_RECORD", str(path))
    return path


async def run(engine: Engine, text: str, seed: int | None = 7) -> np.ndarray:
    request = SegmentRequest(text=text, language="zh", voice="speaker", seed=seed)
    return np.concatenate([chunk async for chunk in engine.synthesize(request)])


async def test_synthesis_with_converted_prompt(engine: GlmTtsEngine, record: Path, tmp_path: Path) -> None:
    audio = await run(engine, "你好，世界。")
    assert audio.size == int(24000 * 0.08 * 6)
    args = json.loads(record.read_text())
    assert args["input_text"] == "你好，世界。" and args["seed"] == 7 and args["sample_rate"] == 24000
    prompt = decode(Path(args["prompt_audio"]).read_bytes())
    assert prompt.sample_rate == 24000 and prompt.duration == pytest.approx(3.0, abs=0.06)
    assert Path(args["output_path"]).parent == tmp_path / "work" / "out"
    assert list((tmp_path / "work" / "out").iterdir()) == [], "output files are removed once read"


@pytest.mark.parametrize(
    "text",
    ['"; rm -rf / ; echo "', "$(touch pwned) `touch pwned2` && touch pwned3", "--output_path=/tmp/evil.wav",
     "-h", "../../../../etc/passwd\n--seed=1"],
)  # fmt: skip
async def test_text_cannot_become_a_command_or_an_option(
    engine: GlmTtsEngine, record: Path, tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await run(engine, text)
    args = json.loads(record.read_text())
    assert args["input_text"] == text and args["seed"] == 7
    assert Path(args["output_path"]).is_relative_to(tmp_path / "work")
    assert not any(tmp_path.glob("pwned*")) and not Path("/tmp/evil.wav").exists()


async def test_timeout_kills_the_process(
    engine: GlmTtsEngine, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLMTTS_SLEEP", "30")
    engine._timeout = 0.5
    with pytest.raises(EngineTimeout, match="killed"):
        await run(engine, "slow text")
    pid = json.loads(record.read_text())["pid"]
    assert not Path(f"/proc/{pid}").exists()


async def test_cancel_kills_the_process(
    engine: GlmTtsEngine, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLMTTS_SLEEP", "30")
    task = asyncio.create_task(run(engine, "canceled text"))
    while not record.exists():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not Path(f"/proc/{json.loads(record.read_text())['pid']}").exists()


@pytest.mark.parametrize(
    ("message", "error"),
    [("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 8.00 GiB", EngineOverloaded),
     ("RuntimeError: checkpoint not found", EngineUnavailable)],
)  # fmt: skip
async def test_failure_carries_the_stderr_tail(
    engine: GlmTtsEngine, monkeypatch: pytest.MonkeyPatch, message: str, error: type[Exception]
) -> None:
    monkeypatch.setenv("GLMTTS_FAIL", message)
    with pytest.raises(error, match="exited with 1") as caught:
        await run(engine, "text")
    assert message in str(caught.value)


async def test_runs_are_serial(engine: GlmTtsEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLMTTS_SLEEP", "0.3")
    started = asyncio.get_running_loop().time()
    await asyncio.gather(run(engine, "one"), run(engine, "two"))
    assert asyncio.get_running_loop().time() - started >= 0.6


async def test_one_serial_instance_per_gpu(
    tmp_path: Path, prompt_mp3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("GLMTTS_RECORD_DIR", str(runs))
    monkeypatch.setenv("GLMTTS_SLEEP", "0.3")
    command = [sys.executable, str(SCRIPT)]
    options = {"command": command, "voices": {"speaker": str(prompt_mp3)}, "gpus": [0, 1]}
    config = EngineSettings(name="glm", kind="glmtts", options=options)
    pool = build_engine(config, BuildContext(ThreadPoolExecutor(1), tmp_path, 1))
    assert isinstance(pool, Pool) and [i.url for i in pool.instances] == ["gpu:0", "gpu:1"]
    await pool.load()
    try:
        await asyncio.gather(*(run(pool, "你好") for _ in range(4)))
        engines = [i.engine for i in pool.instances]
        assert all([isinstance(e, GlmTtsEngine) and await e.health(1.0) for e in engines])
    finally:
        await pool.close()
    records = [json.loads(path.read_text()) for path in runs.iterdir()]
    by_gpu = {g: sorted((r["started"], r["ended"]) for r in records if r["gpu"] == g) for g in ("0", "1")}
    assert [len(spans) for spans in by_gpu.values()] == [2, 2], "the load is spread over both GPUs"
    for first, second in by_gpu.values():
        assert first[1] <= second[0], "each GPU runs one request at a time"
    assert by_gpu["0"][0][0] < by_gpu["1"][0][1] and by_gpu["1"][0][0] < by_gpu["0"][0][1], "GPUs overlap"


async def test_a_cloned_voice_is_the_prompt(engine: GlmTtsEngine, record: Path, tmp_path: Path) -> None:
    from tests.support.signals import GOOD
    from voxserve.config import ReferenceSettings
    from voxserve.engines.base import Reference
    from voxserve.voices import VoiceLibrary, check_reference

    library = VoiceLibrary(tmp_path / "voices")
    voice, _ = library.add_reference(check_reference(GOOD, ReferenceSettings()))
    request = SegmentRequest(text="你好", language="zh", voice="speaker", reference=library.reference(voice))
    assert isinstance(request.reference, Reference)
    audio = np.concatenate([chunk async for chunk in engine.synthesize(request)])
    assert audio.size
    prompt = Path(json.loads(record.read_text())["prompt_audio"])
    assert prompt == library.audio_path(voice)
    assert decode(prompt.read_bytes()).sample_rate == 24000
