"""``voxserve batch`` against a hand-tuned client, in one run.

One stand-in CosyVoice instance of capacity C (past it, it runs out of memory) failing 1 % of its
requests at random. The same items go through :class:`voxserve.batch.Batch` with ``auto`` against
voxserve in front of the instance (its pool limit set to C), and through the client the source
documents' users wrote by hand, straight at the instance: a fixed semaphore of N requests, each
retried after 1, 2, 4, ... s (up to the same 8 attempts), for each N of a sweep. Ideal is items ×
one request's latency alone ÷ C: the instance busy all the time, never overloaded.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness.instances import engine_instances
from harness.server import NO_CACHE, start_server

from voxserve.batch.manifest import Item
from voxserve.batch.run import Batch, BatchOptions
from voxserve.client import AsyncClient, Retry

TEXT = "今天天气很好，我们一起去公园散步吧，第{n}次。"


@dataclass
class Run:
    how: str
    succeeded: int
    items: int
    seconds: float


def _items(count: int) -> list[Item]:
    return [
        Item(n + 1, f"item{n:05d}", TEXT.format(n=n), "wav", None, {"model": "cosy"}) for n in range(count)
    ]


async def _latency(url: str) -> float:
    """One request alone (the instance idle): what each item costs when nothing waits."""
    async with AsyncClient(url, retry=Retry(attempts=3)) as client:
        times = []
        for n in range(8):
            started = time.perf_counter()
            await client.speech(TEXT.format(n=n), model="cosy", response_format="wav")
            times.append(time.perf_counter() - started)
        return statistics.median(times[2:])


ATTEMPTS = 8


async def _batch(url: str, items: list[Item], out_dir: Path) -> Run:
    async with AsyncClient(url, retry=Retry(attempts=1)) as client:
        started = time.perf_counter()
        results = await Batch(client, items, BatchOptions(out_dir, attempts=ATTEMPTS)).run()
        seconds = time.perf_counter() - started
    ok = sum(result.status == "ok" for result in results)
    return Run("voxserve batch, auto, through voxserve", ok, len(items), seconds)


async def _semaphore_client(url: str, items: list[Item], out_dir: Path, jobs: int) -> Run:
    """The hand-written client: ``jobs`` at once straight at the engine, exponential backoff."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(jobs)
    limits = httpx.Limits(max_connections=jobs, max_keepalive_connections=jobs)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one(item: Item) -> bool:
            for attempt in itertools.count():
                async with gate:
                    try:
                        answer = await http.post(
                            "/inference_sft", data={"tts_text": item.text, "spk_id": "中文女"}
                        )
                        if answer.status_code == 200 and answer.content:
                            await asyncio.to_thread((out_dir / f"{item.id}.pcm").write_bytes, answer.content)
                            return True
                    except httpx.HTTPError:
                        pass
                if attempt + 1 == ATTEMPTS:
                    return False
                await asyncio.sleep(2**attempt)
            return False

        started = time.perf_counter()
        made = await asyncio.gather(*(one(item) for item in items))
        seconds = time.perf_counter() - started
    return Run(f"fixed {jobs}, straight at the engine", sum(made), len(items), seconds)


def measure(
    items: int, capacity: int, seconds_per_char: float, error_rate: float, sweep: list[int]
) -> tuple[float, list[Run]]:
    """(ideal seconds, runs): voxserve batch's auto first, then the hand-written client at each
    fixed concurrency of the sweep."""
    directory = Path(tempfile.mkdtemp(prefix="voxserve-batch-"))
    with engine_instances(
        1, capacity=capacity, seconds_per_char=seconds_per_char, error_rate=error_rate
    ) as found:
        config = directory / "voxserve.toml"
        config.write_text(
            'embedded = false\n[jobs]\nworkers = 0\n[[engines]]\nname = "cosy"\nkind = "cosyvoice"\n'
            f'url = "{found[0][0]}"\nmax_concurrency = {capacity}\nqueue_timeout = 120\n'
            'options = { generation = 1, voices = ["中文女"] }\n'
        )
        server = start_server(
            directory, directory / "voxserve.log", {"VOXSERVE_CONFIG": str(config), **NO_CACHE}
        )
        try:
            latency = asyncio.run(_latency(server.url))
            runs = [asyncio.run(_batch(server.url, _items(items), directory / "out-auto"))]
            for jobs in sweep:
                out_dir = directory / f"out-{jobs}"
                runs.append(asyncio.run(_semaphore_client(found[0][0], _items(items), out_dir, jobs)))
        finally:
            server.stop()
    return items * latency / capacity, runs
