"""Proxy overhead: a streaming engine reached directly, through nginx, and through voxserve.

One CosyVoice stand-in streams each answer in 0.1 s chunks. Requests are sent
one at a time, so the figures are latency, not throughput: the time to the
first byte and to the last, and how much each proxy adds to the direct path.
The routes take turns request by request, so a slower moment of the machine
weighs on all of them alike. A bare Python pass-through
(:mod:`bench.passthrough`) shows the floor of the HTTP stack voxserve is
built on.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness.instances import ROOT, engine_instances, nginx, wait_listening
from harness.server import NO_CACHE, free_port, start_server

TEXT = "今天天气很好，我们一起去公园散步吧。"
SPEECH = {"model": "cosy", "input": TEXT, "response_format": "pcm"}
WARM_UP = 3  # requests per route that warm connections up and are not counted


@dataclass
class Route:
    """One way to the engine: its name, the request that takes it, and what it measured."""

    name: str
    url: str
    request: dict[str, Any]
    first_byte: list[float] = field(default_factory=list)
    last_byte: list[float] = field(default_factory=list)

    def measure(self, client: httpx.Client) -> None:
        started = time.perf_counter()
        with client.stream("POST", self.url, **self.request) as response:
            response.raise_for_status()
            chunks = response.iter_raw()
            next(chunks)
            self.first_byte.append(time.perf_counter() - started)
            for _ in chunks:
                pass
            self.last_byte.append(time.perf_counter() - started)

    @staticmethod
    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self, direct: Route | None) -> list[str]:
        cells = [self.name]
        for values, base in (
            (self.first_byte, direct and direct.first_byte),
            (self.last_byte, direct and direct.last_byte),
        ):
            values = values[WARM_UP:]
            p50, p99 = statistics.median(values) * 1000, self.p(values, 0.99)
            added = f" (+{p50 - statistics.median(base[WARM_UP:]) * 1000:.1f})" if base else ""
            cells += [f"{p50:.1f}{added}", f"{p99:.1f}"]
        return cells


@contextmanager
def _passthrough(upstream: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.passthrough", upstream, str(port)], cwd=ROOT)
    try:
        wait_listening(f"http://127.0.0.1:{port}/docs", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@contextmanager
def _voxserve(upstream: str, directory: Path) -> Iterator[str]:
    config = directory / "voxserve.toml"
    config.write_text(
        'embedded = false\n[jobs]\nworkers = 0\n[[engines]]\nname = "cosy"\nkind = "cosyvoice"\n'
        f'url = "{upstream}"\n'
        'options = { generation = 1, voices = ["中文女"] }\n'
    )
    env = {"VOXSERVE_CONFIG": str(config), **NO_CACHE}
    server = start_server(directory, directory / "voxserve.log", env)
    try:
        yield server.url
    finally:
        server.stop()


def run(count: int, seconds_per_char: float) -> list[Route]:
    """``count`` requests on each route, the routes in turn; the direct route comes first."""
    directory = Path(tempfile.mkdtemp(prefix="voxserve-proxy-"))
    form = {"data": {"tts_text": TEXT, "spk_id": "中文女"}}
    with ExitStack() as stack:
        ((url, _),) = stack.enter_context(engine_instances(1, seconds_per_char=seconds_per_char))
        proxy = stack.enter_context(nginx([url], directory))
        bare = stack.enter_context(_passthrough(url))
        voxserve = stack.enter_context(_voxserve(url, directory))
        client = stack.enter_context(httpx.Client(timeout=60))
        routes = [
            Route("direct", f"{url}/inference_sft", form),
            Route("nginx", f"{proxy}/inference_sft", form),
            Route("bare Python pass-through", f"{bare}/v1/audio/speech", {"json": {"input": TEXT}}),
            Route("voxserve", f"{voxserve}/v1/audio/speech", {"json": SPEECH}),
        ]
        for _ in range(count + WARM_UP):
            for route in routes:
                route.measure(client)
    return routes
