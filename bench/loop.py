"""Does anything stall the event loop? Lag under a mixed load, and the bounds hostile input meets.

- Loop lag: a real ``voxserve serve`` (embedded engines) with, at once, 20
  clients streaming speech (hibari, ~300 characters each, again and again),
  20 listeners joining a long running job's audio, 50 clients following its
  events (25 SSE, 25 WebSocket) and a 1,000,000-character submission. The
  server's own probe (``voxserve_event_loop_lag_window_seconds``) gives
  p50, p99 and the maximum over the load; ``/healthz`` latency seen from
  outside is the cross-check.
- Plan time of 1,000,000 characters on one line, in process.
- Peak RSS growth of the server for a FLAC holding an hour of silence (the
  largest compressed upload the size limit admits), by upload.
- Pool wait p50/p99 with 3 instances of capacity 10 under 3x load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import websockets
from harness.instances import engine_instances
from harness.probes import record_waits, silent_flac, status_kb
from harness.server import NO_CACHE, start_server

from voxserve.config import Settings
from voxserve.engines import SegmentRequest
from voxserve.engines.cosyvoice import CosyVoiceOptions, CosyVoiceRuntime
from voxserve.engines.fake import FakeEngine
from voxserve.engines.remote import default_client
from voxserve.looplag import WINDOW
from voxserve.metrics import Metrics
from voxserve.pipeline import Pipeline, SpeechRequest
from voxserve.routing import FixedLimit, Instance, Pool, PoolSettings, Role
from voxserve.text import TextNormalizer

SPEECH = (
    "The committee met on Tuesday to review the budget for the coming year. "
    "Several members asked for more time, and the chair agreed to a second meeting next week. "
    "Until then, every department will send its figures, with notes on what changed and why. "
)
LINE = "Dr. Smith paid $3.50 on 2024-05-01 at 10:30. It was a fine day, wasn't it? Yes! The U.S. team won. "

SFT = CosyVoiceOptions(generation=1, voices=["中文女"])  # the stand-in's CosyVoice-300M-SFT


@dataclass
class LoopLag:
    p50: float
    p99: float
    max: float
    healthz_p50: float
    healthz_p99: float
    healthz_max: float
    streams: int
    listeners: int
    followers: int
    submitted_in: float


def _window(metrics: str) -> dict[str, float]:
    prefix = 'voxserve_event_loop_lag_window_seconds{level="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith(prefix)
    }


class MixedLoad:
    """The clients of the loop-lag run, all against one server until ``stop``."""

    def __init__(self, client: httpx.AsyncClient, base: str, job_id: str, seconds: float) -> None:
        self.client = client
        self.base = base
        self.job = job_id
        self.stop = time.monotonic() + seconds
        self.counts = {"streams": 0, "listeners": 0, "followers": 0}

    def running(self) -> bool:
        return time.monotonic() < self.stop

    async def stream(self) -> None:
        body = {"input": SPEECH, "model": "hibari", "response_format": "opus"}
        while self.running():
            async with self.client.stream("POST", "/v1/audio/speech", json=body) as response:
                async for _ in response.aiter_raw():
                    pass
            self.counts["streams"] += 1

    async def listen(self) -> None:
        while self.running():
            with contextlib.suppress(httpx.ReadTimeout):
                async with self.client.stream("GET", f"/v1/jobs/{self.job}/audio", timeout=5) as response:
                    async for _ in response.aiter_raw():
                        if not self.running():
                            break
            self.counts["listeners"] += 1

    async def follow_sse(self) -> None:
        with contextlib.suppress(httpx.ReadTimeout):
            async with self.client.stream("GET", f"/v1/jobs/{self.job}/events", timeout=2) as response:
                self.counts["followers"] += 1
                async for _ in response.aiter_raw():
                    if not self.running():
                        return

    async def follow_ws(self) -> None:
        url = self.base.replace("http", "ws") + f"/v1/jobs/{self.job}/ws"
        async with websockets.connect(url, open_timeout=10) as socket:
            self.counts["followers"] += 1
            while self.running():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(socket.recv(), 1)

    async def submit_a_book(self) -> float:
        await asyncio.sleep(2)
        text = (LINE * (1_000_000 // len(LINE) + 1))[:1_000_000]
        started = time.monotonic()
        answer = await self.client.post("/v1/jobs", json={"input": text, "model": "hibari"})
        assert answer.status_code == 202, answer.text
        await self.client.delete(f"/v1/jobs/{answer.json()['id']}")
        return time.monotonic() - started

    async def probe(self) -> list[float]:
        latencies = []
        while self.running():
            started = time.monotonic()
            await self.client.get("/healthz")
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        return sorted(latencies)


async def _mixed_load(base: str, seconds: float) -> LoopLag:
    timeout = httpx.Timeout(120, connect=10)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        job = (await client.post("/v1/jobs", json={"input": SPEECH * 120, "model": "hibari"})).json()
        while (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] != "running":
            await asyncio.sleep(0.1)
        load = MixedLoad(client, base, job["id"], seconds)
        book = asyncio.create_task(load.submit_a_book())
        probe = asyncio.create_task(load.probe())
        await asyncio.gather(
            *(load.stream() for _ in range(20)),
            *(load.listen() for _ in range(20)),
            *(load.follow_sse() for _ in range(25)),
            *(load.follow_ws() for _ in range(25)),
        )
        latencies = await probe
        window = _window((await client.get("/metrics")).text)
        await client.delete(f"/v1/jobs/{job['id']}")
    return LoopLag(
        p50=window["0.5"],
        p99=window["0.99"],
        max=window["1"],
        healthz_p50=statistics.median(latencies),
        healthz_p99=latencies[int(0.99 * len(latencies)) - 1],
        healthz_max=latencies[-1],
        submitted_in=await book,
        **load.counts,
    )


def loop_lag(seconds: float = 20.0) -> LoopLag:
    data_dir = Path(tempfile.mkdtemp(prefix="voxserve-bench-loop-"))
    server = start_server(data_dir, data_dir / "server.log", NO_CACHE)
    try:
        time.sleep(WINDOW + 1)  # the window forgets loading (models load in threads that hold the GIL)
        return asyncio.run(_mixed_load(server.url, seconds))
    finally:
        server.stop()


def plan_seconds(chars: int = 1_000_000) -> dict[str, float]:
    """Planning time of ``chars`` characters on one line, for a few shapes of text."""
    engine = FakeEngine(name="fake")
    asyncio.run(engine.load())
    normalizer = TextNormalizer()
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), default_engine="fake")
    pipeline = Pipeline({"fake": engine}, normalizer, settings, ThreadPoolExecutor(1), Metrics())
    shapes = {
        "English sentences": LINE,
        "Chinese, no punctuation": "今天天气很好我们一起去公园散步吧",
        "words, no punctuation": "word ",
        "pauses and pinyin marks": "a[pause:0.01s][h][ǎo] ",
    }
    unbounded = replace(pipeline.planner.job, max_chars=chars, max_audio_seconds=1e9, require_ready=False)
    timings = {}
    for name, unit in shapes.items():
        text = (unit * (chars // len(unit) + 1))[:chars]
        started = time.perf_counter()
        pipeline.plan(SpeechRequest(input=text), unbounded)
        timings[name] = time.perf_counter() - started
    return timings


def upload_peak_mb(hours: float = 1.0) -> tuple[int, float, int]:
    """(bytes of the FLAC, peak RSS growth in MB while the server refuses it, status)."""
    bomb = silent_flac(hours * 3600)
    data_dir = Path(tempfile.mkdtemp(prefix="voxserve-bench-bomb-"))
    engines = json.dumps([{"name": "fake", "kind": "fake", "options": {"cloning": True}}])
    env = {**NO_CACHE, "VOXSERVE_ENGINES": engines, "VOXSERVE_EMBEDDED": "false"}
    server = start_server(data_dir, data_dir / "server.log", env)
    try:
        pid = server.process.pid
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before = status_kb(pid, "VmRSS")
        response = httpx.post(f"{server.url}/v1/voices", files={"audio": ("a.flac", bomb)}, timeout=120)
        return len(bomb), (status_kb(pid, "VmHWM") - before) / 1024, response.status_code
    finally:
        server.stop()


async def _pool_waits(clients: int, rounds: int, seconds_per_char: float) -> tuple[list[float], int]:
    refused = 0
    with engine_instances(3, capacity=10, seconds_per_char=seconds_per_char) as servers:
        instances = [
            Instance(
                CosyVoiceRuntime("cosy", default_client(url, read_timeout=30), SFT),
                url,
                Role.PRIMARY,
                FixedLimit(10),
            )
            for url, _ in servers
        ]
        fair = clients / 30 * 5 * seconds_per_char  # each request waits for the ones ahead of it
        pool = Pool("cosy", instances, PoolSettings(queue_timeout=2 * fair + 1, health_interval=60))
        await pool.load()
        waits = record_waits(pool)

        async def client() -> None:
            nonlocal refused
            for _ in range(rounds):
                request = SegmentRequest(text="你好你好你", language="zh", voice="中文女")
                try:
                    async for _ in pool.synthesize(request):
                        pass
                except Exception:
                    refused += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        await pool.close()
    return waits[clients:], refused  # after the first round, when everyone arrived at once


def pool_waits(
    clients: int = 90, rounds: int = 6, seconds_per_char: float = 0.04
) -> tuple[float, float, int]:
    """(median wait, p99 wait, refused) in seconds under 3x load of 3 instances of capacity 10."""
    waits, refused = asyncio.run(_pool_waits(clients, rounds, seconds_per_char))
    waits.sort()
    return statistics.median(waits), waits[int(0.99 * len(waits)) - 1], refused
