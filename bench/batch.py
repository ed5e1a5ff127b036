"""``voxserve batch``'s concurrency against the best fixed value and a fixed 30.

One stand-in CosyVoice instance of capacity C (past it, it runs out of memory) failing 1 % of its
requests at random, with voxserve in front, its pool limit set to C: the table measures the batch
client's concurrency, not the pool's own adaptation. The same items go
through :class:`voxserve.batch.Batch` with ``auto``, and with each fixed ``-j`` of a sweep. Ideal
is items × one request's latency alone ÷ C: the instance busy all the time, never overloaded.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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


async def _batch(url: str, items: list[Item], out_dir: Path, jobs: int | None) -> Run:
    async with AsyncClient(url, retry=Retry(attempts=1)) as client:
        started = time.perf_counter()
        results = await Batch(client, items, BatchOptions(out_dir, concurrency=jobs, attempts=8)).run()
        seconds = time.perf_counter() - started
    ok = sum(result.status == "ok" for result in results)
    return Run("auto" if jobs is None else f"-j {jobs}", ok, len(items), seconds)


def measure(
    items: int, capacity: int, seconds_per_char: float, error_rate: float, sweep: list[int]
) -> tuple[float, list[Run]]:
    """(ideal seconds, runs): auto first, then every fixed value of the sweep."""
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
            runs = []
            for jobs in (None, *sweep):
                out_dir = directory / f"out-{jobs or 'auto'}"
                runs.append(asyncio.run(_batch(server.url, _items(items), out_dir, jobs)))
        finally:
            server.stop()
    return items * latency / capacity, runs
