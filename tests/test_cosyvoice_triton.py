"""CosyVoice2/3 through upstream's Triton runtime, against a real Triton server (PyTriton's build).

The server holds stand-in models bound under upstream's tensor names and types
(``harness/servers/cosyvoice_triton.py``): ``cosyvoice3`` offline (HTTP), ``cosyvoice2`` decoupled
(gRPC streaming). ``make test`` installs ``nvidia-pytriton`` into its own environment
(``.venv/tools/triton``): it needs numpy below 2, which voxserve's own environment is past.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.instances import TRITON_PYTHON, triton_server
from harness.server import free_port

from tests.support.api import SPEECH, ready_client
from tests.support.audio import decode
from tests.support.signals import GOOD
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines import SegmentRequest
from voxserve.engines.cosyvoice import CosyVoiceOptions
from voxserve.engines.cosyvoice.triton import CosyVoiceTriton
from voxserve.engines.prompts import Prompts
from voxserve.errors import EngineOverloaded, EngineUnavailable

TEXT = "今天天气很好，我们一起去公园散步吧。"

pytestmark = pytest.mark.skipif(not TRITON_PYTHON.exists(), reason="no PyTriton: make test installs it")


@pytest.fixture(scope="module")
def triton() -> Iterator[dict[str, str]]:
    """One Triton server for the module: its HTTP and gRPC addresses."""
    with triton_server(capacity=1, seconds_per_char=0.02) as addresses:
        yield addresses


@pytest.fixture
def prompt(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "prompt.wav"
    path.write_bytes(GOOD)
    return {"xiaoyu": {"audio": str(path), "text": "希望你以后能够做的比我还好呦。"}}


def engine(
    url: str, generation: int, protocol: str, voices: dict[str, Any], tmp_path: Path
) -> CosyVoiceTriton:
    options = CosyVoiceOptions(api="triton", generation=generation, voices=voices, triton_protocol=protocol)
    prompts = Prompts(options.voices, tmp_path / "prompts")  # type: ignore[arg-type]
    return CosyVoiceTriton("cosy", url, options, prompts, read_timeout=30)


def test_whole_answers_over_http_through_the_api(
    triton: dict[str, str], prompt: dict[str, Any], tmp_path: Path
) -> None:
    options = {"api": "triton", "generation": 3, "voices": prompt, "triton_protocol": "http"}
    config = EngineSettings(name="cosy", kind="cosyvoice", url=triton["http"], options=options)
    settings = Settings(
        data_dir=tmp_path, embedded=False, engines=[config], default_engine="cosy", jobs={"workers": 0}
    )
    with ready_client(settings) as client:
        response = client.post(SPEECH, json={"model": "cosy", "input": TEXT, "response_format": "wav"})
        assert response.status_code == 200, response.text
        audio = decode(response.content)
        assert audio.sample_rate == 24000
        assert audio.duration == pytest.approx(len(TEXT) * 0.06 + 0.25, abs=0.05), "24 kHz read as 24 kHz"
        assert np.sqrt(np.mean(audio.samples**2)) > 0.01, "not silence"
        (instance,) = client.get("/v1/engines").json()["engines"][0]["instances"]
        assert instance["healthy"] and instance["requests"] == 1


async def test_a_decoupled_model_streams_over_grpc(
    triton: dict[str, str], prompt: dict[str, Any], tmp_path: Path
) -> None:
    cosy = engine(triton["grpc"], 2, "grpc", prompt, tmp_path)
    await cosy.load()
    assert cosy.capabilities.streaming and cosy.capabilities.clone_needs_transcript
    assert await cosy.health() is None
    arrivals = []
    started = time.monotonic()
    async for chunk in cosy.synthesize(SegmentRequest(text=TEXT, language="zh", voice="xiaoyu")):
        arrivals.append((time.monotonic() - started, chunk.size))
    await cosy.close()
    assert len(arrivals) > 3, "chunk by chunk"
    assert sum(size for _, size in arrivals) == int(24000 * len(TEXT) * 0.06)
    assert arrivals[0][0] < arrivals[-1][0] / 2, "the first audio long before the last"


async def test_out_of_memory_is_overload_and_a_wrong_or_dead_server_is_not_used(
    triton: dict[str, str], prompt: dict[str, Any], tmp_path: Path
) -> None:
    engines = [engine(triton["http"], 3, "http", prompt, tmp_path) for _ in range(2)]
    for cosy in engines:
        await cosy.load()
    request = SegmentRequest(text=TEXT, language="zh", voice="xiaoyu")

    async def whole(cosy: CosyVoiceTriton) -> int:
        return sum([chunk.size async for chunk in cosy.synthesize(request)])

    results = await asyncio.gather(*(whole(cosy) for cosy in engines), return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], EngineOverloaded), results
    assert "CUDA out of memory" in str(failed[0])
    mismatched = engine(triton["http"], 2, "http", prompt, tmp_path)  # cosyvoice2 is deployed decoupled
    said = await mismatched.health()  # a decoupled model cannot answer over HTTP: not taken into rotation
    assert said is not None and "set triton_protocol = 'grpc'" in said, said
    dead = engine(f"http://127.0.0.1:{free_port()}", 3, "http", prompt, tmp_path)
    await dead.load()
    assert "connection refused" in (await dead.health() or "")
    with pytest.raises(EngineUnavailable, match="unreachable"):
        await whole(dead)
    for cosy in [*engines, mismatched, dead]:
        await cosy.close()
