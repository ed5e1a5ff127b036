"""Proxy overhead: a streaming engine reached directly, through nginx, and through voxserve.

One CosyVoice stand-in streams each answer in 0.1 s chunks; requests are sent
one at a time, so the figures are latency, not throughput: the time to the
first byte and to the last, and how much each proxy adds to the direct path.
A bare Python pass-through (:mod:`bench.passthrough`) shows the floor of the
HTTP stack voxserve is built on.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.instances import ROOT, engine_instances, nginx, wait_listening
from bench.server import NO_CACHE, free_port, start_server

TEXT = "今天天气很好，我们一起去公园散步吧。"


@dataclass
class Timings:
    path: str
    first_byte: list[float]
    last_byte: list[float]

    @staticmethod
    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self, direct: Timings | None) -> list[str]:
        cells = [self.path]
        for values, base in (
            (self.first_byte, direct and direct.first_byte),
            (self.last_byte, direct and direct.last_byte),
        ):
            p50, p99 = statistics.median(values) * 1000, self.p(values, 0.99)
            added = f" (+{p50 - statistics.median(base) * 1000:.1f})" if base else ""
            cells += [f"{p50:.1f}{added}", f"{p99:.1f}"]
        return cells


def _measure(path: str, client: httpx.Client, method: str, url: str, count: int, **kwargs: object) -> Timings:
    first, last = [], []
    for _ in range(count + 3):  # the first three warm connections up
        started = time.perf_counter()
        with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
            response.raise_for_status()
            chunks = response.iter_raw()
            next(chunks)
            first.append(time.perf_counter() - started)
            for _ in chunks:
                pass
            last.append(time.perf_counter() - started)
    return Timings(path, first[3:], last[3:])


def run(count: int, seconds_per_char: float) -> list[Timings]:
    directory = Path(tempfile.mkdtemp(prefix="voxserve-proxy-"))
    form = {"tts_text": TEXT, "spk_id": "中文女"}
    with (
        engine_instances(1, seconds_per_char=seconds_per_char) as instances,
        httpx.Client(timeout=60) as client,
    ):
        ((url, _),) = instances
        results = [_measure("direct", client, "POST", f"{url}/inference_sft", count, data=form)]
        with nginx([url], directory) as proxy:
            results.append(
                _measure("nginx (seed 000)", client, "POST", f"{proxy}/inference_sft", count, data=form)
            )
        port = free_port()
        command = [sys.executable, "-m", "bench.passthrough", url, str(port)]
        passthrough = subprocess.Popen(command, cwd=ROOT)
        try:
            wait_listening(f"http://127.0.0.1:{port}/docs", passthrough)
            speech = f"http://127.0.0.1:{port}/v1/audio/speech"
            path = "bare Python pass-through"
            results.append(_measure(path, client, "POST", speech, count, json={"input": TEXT}))
        finally:
            passthrough.kill()
            passthrough.wait()
        config = directory / "voxserve.toml"
        config.write_text(
            f'workers = 0\n[[engines]]\nname = "cosy"\nkind = "cosyvoice"\nurl = "{url}"\n'
            'options = { voices = ["中文女"], sample_rate = 22050 }\n'
        )
        env = {"VOXSERVE_CONFIG": str(config), **NO_CACHE}
        server = start_server(directory, directory / "voxserve.log", env)
        try:
            body = {"model": "cosy", "input": TEXT, "response_format": "pcm"}
            results.append(
                _measure("voxserve", client, "POST", f"{server.url}/v1/audio/speech", count, json=body)
            )
        finally:
            server.stop()
    return results
