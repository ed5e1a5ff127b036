"""GLM-TTS's two interfaces against the stand-ins: what voxserve's adapter adds, what batching saves.

- Gradio: the same short texts through upstream's app, called by a bare
  ``gradio_client`` script (``predict``, as its README shows) and by voxserve's
  engine (submit, fetch, decode), one call at a time; the median per call.
- Batch: a job of ``segments`` segments against a checkout whose script
  takes ``load`` seconds to load its model and ``item`` seconds a segment
  (the stand-in's ``GLMTTS_LOAD_SECONDS`` / ``GLMTTS_SECONDS_PER_ITEM``): one
  run for the whole job (voxserve's batch) versus one run per segment (what
  a wrapper called per text costs), against the floor of load + segments x item.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.instances import glmtts_apps, glmtts_checkout
from harness.texts import CHINESE_TEXT

from voxserve.audio.pcm import wav_bytes
from voxserve.engine_settings import EngineSettings
from voxserve.engines import Engine, SegmentRequest
from voxserve.engines.glmtts import GlmTtsBatchEngine
from voxserve.engines.kind import BuildContext
from voxserve.registry import build_engine
from voxserve.routing import Pool

PROMPT_TEXT = "他当时还跟线下其他的站姐吵架，然后，打架进局子了。"
TEXTS = [sentence + "。" for sentence in CHINESE_TEXT.split("。") if sentence]


def _prompt(directory: Path) -> Path:
    import numpy as np

    t = np.arange(3 * 24000) / 24000
    path = directory / "prompt.wav"
    path.write_bytes(wav_bytes((0.3 * np.sin(2 * np.pi * 160 * t)).astype(np.float32), 24000))
    return path


def _engine(directory: Path, table: dict[str, Any], **fields: Any) -> Engine:
    voices = {"jiayan": {"audio": str(_prompt(directory)), "text": PROMPT_TEXT}}
    config = EngineSettings(name="glm", kind="glmtts", options={**table, "voices": voices}, **fields)
    return build_engine(config, BuildContext(ThreadPoolExecutor(1), directory, 1))


def _request(text: str) -> SegmentRequest:
    return SegmentRequest(text=text, language="zh", voice="jiayan", seed=42)


async def _speak(engine: Engine, text: str) -> None:
    async for _ in engine.synthesize(_request(text)):
        pass


def gradio_calls(rounds: int = 20) -> tuple[float, float]:
    """(median seconds of a bare gradio_client predict, of a segment through voxserve's engine)."""
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as temp, glmtts_apps([], logs=Path(temp)) as [url]:
        directory = Path(temp)
        prompt = _prompt(directory)
        client = Client(url, verbose=False, download_files=str(directory / "downloads"))
        bare = []
        for index in range(rounds):
            started = time.perf_counter()
            client.predict(
                PROMPT_TEXT,
                handle_file(str(prompt)),
                TEXTS[index % len(TEXTS)],
                42,
                24000,
                True,
                api_name="/run_inference",
            )
            bare.append(time.perf_counter() - started)
        client.close()

        async def through_voxserve() -> list[float]:
            pool = _engine(directory, {}, url=url)
            assert isinstance(pool, Pool)
            await pool.load()
            times = []
            for index in range(rounds):
                started = time.perf_counter()
                await _speak(pool, TEXTS[index % len(TEXTS)])
                times.append(time.perf_counter() - started)
            await pool.close()
            return times

        ours = asyncio.run(through_voxserve())
    return statistics.median(bare), statistics.median(ours)


@dataclass
class BatchTimes:
    segments: int
    load: float
    item: float
    one_run: float
    run_per_segment: float

    @property
    def floor(self) -> float:
        return self.load + self.segments * self.item


@contextmanager
def _stand_in_timing(load: float, item: float) -> Any:
    saved = {key: os.environ.get(key) for key in ("GLMTTS_LOAD_SECONDS", "GLMTTS_SECONDS_PER_ITEM")}
    os.environ["GLMTTS_LOAD_SECONDS"], os.environ["GLMTTS_SECONDS_PER_ITEM"] = str(load), str(item)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def batch_runs(segments: int = 20, load: float = 2.0, item: float = 0.1) -> BatchTimes:
    """Seconds for ``segments`` segments in one run, and in one run each."""
    texts = [TEXTS[index % len(TEXTS)] for index in range(segments)]

    async def measure(directory: Path) -> tuple[float, float]:
        table = {
            "interface": "batch",
            "workdir": str(glmtts_checkout(directory / "GLM-TTS")),
            "python": sys.executable,
        }
        engine = _engine(directory, table)
        assert isinstance(engine, GlmTtsBatchEngine)
        await engine.load()
        started = time.perf_counter()
        async for _ in engine.synthesize_batch([_request(text) for text in texts]):
            pass
        one_run = time.perf_counter() - started
        started = time.perf_counter()
        for text in texts:
            await _speak(engine, text)
        return one_run, time.perf_counter() - started

    with tempfile.TemporaryDirectory() as temp, _stand_in_timing(load, item):
        one_run, per_segment = asyncio.run(measure(Path(temp)))
    return BatchTimes(segments, load, item, one_run, per_segment)
