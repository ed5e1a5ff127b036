"""Overload: three capacity-limited instances under three times their capacity.

Three paths to the same instances, the same requests, the same concurrency:

- voxserve: a pool with adaptive limits (``max_concurrency = "auto"``), once
  from a cold start, when it still has to find each instance's capacity,
  and once more on the same server, as the next batch would find it;
- nginx: round robin as a hand-written gateway configures it (buffering off, keepalive);
- a hand-written client: a fixed semaphore of 10 per instance, requests spread
  round robin, retries after 1 s, 2 s and 4 s.

A request succeeds when it answers 200 with all of its audio.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness.instances import engine_instances, nginx
from harness.server import NO_CACHE, start_server

TEXT = "今天天气很好，我们一起去公园散步吧。"
SAMPLE_RATE = 22050


@dataclass
class Outcome:
    path: str
    succeeded: int
    failed: int
    seconds: float

    @property
    def throughput(self) -> float:
        return self.succeeded / self.seconds


def expected_bytes() -> int:
    from harness.servers.engines import tone

    return tone(TEXT, SAMPLE_RATE).size * 2


async def _run(path: str, requests: int, clients: int, one: Callable[[int], Awaitable[bool]]) -> Outcome:
    gate = asyncio.Semaphore(clients)
    results: list[bool] = []

    async def client(index: int) -> None:
        async with gate:
            try:
                results.append(await one(index))
            except httpx.HTTPError:
                results.append(False)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(requests)))
    elapsed = time.perf_counter() - started
    return Outcome(path, sum(results), len(results) - sum(results), elapsed)


async def through_voxserve(url: str, requests: int, clients: int, path: str) -> Outcome:
    size = expected_bytes()
    async with httpx.AsyncClient(
        base_url=url, timeout=300, limits=httpx.Limits(max_connections=clients)
    ) as http:

        async def one(_: int) -> bool:
            body = {"model": "cosy", "input": TEXT, "response_format": "pcm"}
            response = await http.post("/v1/audio/speech", json=body)
            return response.status_code == 200 and len(response.content) >= size

        return await _run(path, requests, clients, one)


async def _form_post(http: httpx.AsyncClient, url: str) -> bool:
    response = await http.post(f"{url}/inference_sft", data={"tts_text": TEXT, "spk_id": "中文女"})
    return response.status_code == 200 and len(response.content) == expected_bytes()


async def through_nginx(url: str, requests: int, clients: int) -> Outcome:
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients)) as http:

        async def one(_: int) -> bool:
            return await _form_post(http, url)

        return await _run("nginx round robin", requests, clients, one)


async def semaphore_client(urls: list[str], requests: int, clients: int, per_instance: int = 10) -> Outcome:
    gates = {url: asyncio.Semaphore(per_instance) for url in urls}
    assignment = itertools.cycle(urls)
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients)) as http:

        async def one(_: int) -> bool:
            url = next(assignment)
            for delay in (1, 2, 4, None):
                async with gates[url]:
                    try:
                        if await _form_post(http, url):
                            return True
                    except httpx.HTTPError:
                        pass
                if delay is None:
                    return False
                await asyncio.sleep(delay)
            return False

        return await _run(f"fixed semaphore {per_instance}/instance", requests, clients, one)


def run(requests: int, capacity: int, seconds_per_char: float, load: float) -> tuple[list[Outcome], float]:
    """All three paths; returns their outcomes and the instances' total capacity in requests/s."""
    directory = Path(tempfile.mkdtemp(prefix="voxserve-overload-"))
    clients = int(3 * capacity * load)
    with engine_instances(3, capacity=capacity, seconds_per_char=seconds_per_char) as instances:
        urls = [url for url, _ in instances]
        config = directory / "voxserve.toml"
        instance_list = repr(urls).replace("'", '"')
        config.write_text(
            'embedded = false\n[jobs]\nworkers = 0\n[[engines]]\nname = "cosy"\nkind = "cosyvoice"\n'
            f"instances = {instance_list}\n"
            'max_concurrency = "auto"\nqueue_timeout = 120\n'
            'options = { generation = 1, voices = ["中文女"] }\n'
        )
        outcomes = []
        env = {"VOXSERVE_CONFIG": str(config), **NO_CACHE}
        server = start_server(directory, directory / "voxserve.log", env)
        try:
            asyncio.run(through_voxserve(server.url, capacity, capacity, "warm-up"))  # open the connections
            # the first run finds the instances' limits, the second (a next batch) starts from them
            for path in ("voxserve, cold (limits unknown)", "voxserve, warm (limits learnt)"):
                outcomes.append(asyncio.run(through_voxserve(server.url, requests, clients, path)))
        finally:
            server.stop()
        with nginx(urls, directory) as proxy:
            outcomes.append(asyncio.run(through_nginx(proxy, requests, clients)))
        outcomes.append(asyncio.run(semaphore_client(urls, requests, clients)))
    request_seconds = seconds_per_char * len(TEXT)
    return outcomes, 3 * capacity / request_seconds
