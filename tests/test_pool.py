"""Pools of instances against capacity-limited test servers speaking CosyVoice's protocol."""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack

import numpy as np
import pytest
from harness.instances import engine_instances
from harness.probes import record_waits
from harness.servers.cosyvoice import cosyvoice_app
from harness.servers.engines import Behaviour, serving, tone

from voxserve.engines import SegmentRequest
from voxserve.engines.cosyvoice import CosyVoiceOptions, CosyVoiceRuntime
from voxserve.engines.remote import default_client
from voxserve.errors import EngineOverloaded, EngineUnavailable
from voxserve.routing import AdaptiveLimit, FixedLimit, Instance, Pool, PoolSettings, Role

FAST = PoolSettings(health_interval=0.1, health_timeout=0.5, queue_timeout=10, attempts=5, retry_base=0.01)


class Cluster:
    """Test servers that can be stopped and started again on the same port."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self.behaviours: list[Behaviour] = []
        self.urls: list[str] = []
        self._running: dict[int, ExitStack] = {}

    def add(self, **behaviour: object) -> int:
        self.behaviours.append(Behaviour(**behaviour))  # type: ignore[arg-type]
        self.urls.append("")
        self.start(len(self.behaviours) - 1)
        return len(self.behaviours) - 1

    def start(self, index: int) -> None:
        stack = ExitStack()
        port = int(self.urls[index].rsplit(":", 1)[1]) if self.urls[index] else None
        self.urls[index] = stack.enter_context(serving(cosyvoice_app(self.behaviours[index]), port))
        self._running[index] = stack
        self._stack.callback(stack.close)

    def stop(self, index: int) -> None:
        self._running.pop(index).close()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with ExitStack() as stack:
        yield Cluster(stack)


def make_pool(
    cluster: Cluster,
    limits: list[FixedLimit | AdaptiveLimit],
    roles: list[Role] | None = None,
    settings: PoolSettings = FAST,
) -> Pool:
    roles = roles or [Role.PRIMARY] * len(limits)
    instances = []
    for url, role, limit in zip(cluster.urls, roles, limits, strict=True):
        engine = CosyVoiceRuntime(
            "cosy", default_client(url, read_timeout=5), CosyVoiceOptions(generation=1, voices=["中文女"])
        )
        instances.append(Instance(engine, url, role, limit))
    return Pool("cosy", instances, settings)


StartPool = Callable[[Pool], Awaitable[Pool]]


@pytest.fixture
async def start() -> AsyncIterator[StartPool]:
    """Loads a pool for a test and closes it after."""
    pools: list[Pool] = []

    async def load(pool: Pool) -> Pool:
        await pool.load()
        pools.append(pool)
        return pool

    yield load
    for pool in pools:
        await pool.close()


async def speak(pool: Pool, text: str = "你好你好你好") -> np.ndarray:
    request = SegmentRequest(text=text, language="zh", voice="中文女")
    return np.concatenate([chunk async for chunk in pool.synthesize(request)])


async def test_least_outstanding_spreads_the_load(cluster: Cluster, start: StartPool) -> None:
    for _ in range(2):
        cluster.add(seconds_per_char=0.02)
    pool = await start(make_pool(cluster, [FixedLimit(10), FixedLimit(10)]))
    await asyncio.gather(*(speak(pool) for _ in range(20)))
    assert [b.served for b in cluster.behaviours] == [10, 10]
    assert [b.peak_in_flight for b in cluster.behaviours] == [10, 10]


async def test_overload_waits_in_the_queue_instead_of_failing(cluster: Cluster, start: StartPool) -> None:
    cluster.add(seconds_per_char=0.01, capacity=2)
    pool = await start(make_pool(cluster, [FixedLimit(2)]))
    results = await asyncio.gather(*(speak(pool) for _ in range(12)))
    assert len(results) == 12 and all(r.size for r in results)
    assert cluster.behaviours[0].peak_in_flight == 2 and cluster.behaviours[0].out_of_memory == 0


async def test_a_deadline_that_cannot_be_met_is_a_clear_503(cluster: Cluster, start: StartPool) -> None:
    cluster.add(seconds_per_char=0.2)
    settings = PoolSettings(queue_timeout=0.3, health_interval=60)
    pool = await start(make_pool(cluster, [FixedLimit(1)], settings=settings))
    results = await asyncio.gather(*(speak(pool) for _ in range(3)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, EngineOverloaded)]
    assert len(refused) == 2 and "stayed busy for 0.3 s" in str(refused[0])
    assert refused[0].status_code == 503


async def test_adaptive_limit_converges_near_the_capacity(cluster: Cluster, start: StartPool) -> None:
    cluster.add(seconds_per_char=0.03, capacity=8)  # 60 ms a request: long beside a busy loop's lag
    limit = AdaptiveLimit(value=2)
    pool = await start(make_pool(cluster, [limit]))
    samples: list[int] = []
    clients = asyncio.Semaphore(24)

    async def client() -> None:
        async with clients:
            await speak(pool, "你好")
            samples.append(limit.current)

    await asyncio.gather(*(client() for _ in range(300)))  # every request succeeds, OOMs are retried
    settled = statistics.mean(samples[len(samples) // 2 :])
    assert 8 * 0.8 <= settled <= 8 * 1.2, f"settled at {settled:.1f} for a capacity of 8"
    assert cluster.behaviours[0].out_of_memory > 0, "the limit was found by probing, not given"


def run_at_limit(limit: AdaptiveLimit, successes: int) -> None:
    """Successes of requests that kept the limit in use."""
    for _ in range(successes):
        limit.on_success(limit.current)


def test_a_failed_probe_confirms_the_ceiling_without_stepping_down() -> None:
    limit = AdaptiveLimit(value=4)
    run_at_limit(limit, 30)  # slow start overshoots a capacity of 10 ...
    limit.on_overload(in_flight=14)  # ... and the instance says so
    assert limit.ceiling == 14 and limit.current < 14
    run_at_limit(limit, 13)  # the requests still in flight at the step say nothing new
    limit.on_overload(in_flight=11)  # below the ceiling: the capacity is lower, step down 10 %
    assert limit.ceiling == 11 and limit.current == 9
    run_at_limit(limit, 10)
    run_at_limit(limit, 1)
    assert limit.current == 10  # quickly back to just under the ceiling
    successes = 0
    while limit.current == 10:
        run_at_limit(limit, 1)
        successes += 1
    assert 40 <= successes <= 45  # probing above it takes about probe_rounds (4) rounds of 10
    limit.on_overload(in_flight=11)  # the probe failed: back to 10, not 9
    assert limit.current == 10
    run_at_limit(limit, 10)
    successes = 0
    while limit.current == 10:
        run_at_limit(limit, 1)
        successes += 1
    assert 80 <= successes <= 90  # and the next probe waits twice as long


def test_a_lower_failure_while_settling_lowers_the_knee_without_a_second_step() -> None:
    limit = AdaptiveLimit(value=16)
    limit.on_overload(in_flight=14)  # slow start overshot a capacity of 10
    stepped = limit.current
    limit.on_overload(in_flight=11)  # already in flight when it stepped down, but it broke lower
    assert limit.ceiling == 11 and limit.current == min(stepped, 10)
    limit.on_overload(in_flight=13)  # higher than the knee now known: nothing new
    assert limit.ceiling == 11


def test_a_limit_not_in_use_does_not_grow() -> None:
    limit = AdaptiveLimit(value=6)
    for _ in range(50):
        limit.on_success(in_flight=2)
    assert limit.current == 6


async def test_ejection_and_return(cluster: Cluster, start: StartPool) -> None:
    for _ in range(2):
        cluster.add(seconds_per_char=0.005)
    pool = await start(make_pool(cluster, [FixedLimit(4), FixedLimit(4)]))
    cluster.stop(0)
    await asyncio.gather(*(speak(pool) for _ in range(20)))  # none fails: retried on the other
    await asyncio.sleep(0.4)
    assert [i.healthy for i in pool.instances] == [False, True]
    served = cluster.behaviours[1].served
    cluster.start(0)
    await asyncio.sleep(0.5)  # two successful health checks bring it back
    assert [i.healthy for i in pool.instances] == [True, True]
    await asyncio.gather(*(speak(pool) for _ in range(20)))
    assert cluster.behaviours[0].served > 0 and cluster.behaviours[1].served < served + 20


async def test_an_answer_cut_off_part_way_resumes_elsewhere_without_a_seam(
    cluster: Cluster, start: StartPool
) -> None:
    cluster.add(break_after_chunks=3)
    cluster.add()
    pool = await start(make_pool(cluster, [FixedLimit(1), FixedLimit(1)]))
    text = "你好你好你好你好你好"
    request = SegmentRequest(text=text, language="zh", voice="中文女")
    received = [chunk async for chunk in pool.synthesize(request)]  # starts on the first: equal load
    np.testing.assert_allclose(np.concatenate(received), tone(text, 22050), atol=1 / 16384)
    assert cluster.behaviours[0].served == 0 and cluster.behaviours[1].served == 1


async def test_backup_only_when_no_primary_is_healthy(cluster: Cluster, start: StartPool) -> None:
    cluster.add(seconds_per_char=0.005)
    cluster.add(seconds_per_char=0.005)
    pool = await start(make_pool(cluster, [FixedLimit(4), FixedLimit(4)], roles=[Role.PRIMARY, Role.BACKUP]))
    await asyncio.gather(*(speak(pool) for _ in range(10)))
    assert [b.served for b in cluster.behaviours] == [10, 0]
    cluster.stop(0)
    await asyncio.gather(*(speak(pool) for _ in range(10)))
    assert cluster.behaviours[1].served == 10
    cluster.start(0)
    await asyncio.sleep(0.5)
    await asyncio.gather(*(speak(pool) for _ in range(10)))
    assert cluster.behaviours[1].served == 10 and cluster.behaviours[0].served == 20


async def test_no_healthy_instance_fails_fast(cluster: Cluster, start: StartPool) -> None:
    cluster.add()
    pool = await start(make_pool(cluster, [FixedLimit(2)]))
    cluster.stop(0)
    await asyncio.sleep(0.5)
    with pytest.raises(EngineUnavailable, match=r"cannot serve: .*: connection refused"):
        await speak(pool)


@pytest.fixture
def instance_processes() -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Three capacity-10 CosyVoice stand-ins, each its own process as real instances are."""
    with engine_instances(3, capacity=10, seconds_per_char=0.005) as processes:
        yield processes


async def test_killing_one_of_three_instances_loses_no_request(
    instance_processes: list[tuple[str, subprocess.Popen[bytes]]], start: StartPool
) -> None:
    settings = PoolSettings(health_interval=0.2, queue_timeout=60, attempts=5, retry_base=0.01)
    instances = [
        Instance(
            CosyVoiceRuntime("cosy", default_client(url), CosyVoiceOptions(generation=1, voices=["中文女"])),
            url,
            Role.PRIMARY,
            AdaptiveLimit(),
        )
        for url, _ in instance_processes
    ]
    pool = await start(Pool("cosy", instances, settings))
    done = 0
    clients = asyncio.Semaphore(30)

    async def client() -> None:
        nonlocal done
        async with clients:
            await speak(pool)
            done += 1
            if done == 100:
                instance_processes[1][1].kill()

    await asyncio.gather(*(client() for _ in range(300)))
    assert done == 300
    assert sum(i.calls.requests - i.calls.errors for i in pool.instances) == 300
    assert not pool.instances[1].healthy and pool.instances[1].calls.errors > 0


async def test_leaving_early_frees_the_slot_and_the_upstream(cluster: Cluster, start: StartPool) -> None:
    cluster.add(seconds_per_char=0.2)
    pool = await start(make_pool(cluster, [FixedLimit(1)]))
    stream = pool.synthesize(SegmentRequest(text="你好你好", language="zh", voice="中文女"))
    task: asyncio.Task[object] = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
    while cluster.behaviours[0].in_flight == 0:
        await asyncio.sleep(0.01)
    assert pool.instances[0].in_flight == 1
    task.cancel()  # what the server does to a request whose client hung up
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.instances[0].in_flight == 0
    for _ in range(40):
        if cluster.behaviours[0].in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert cluster.behaviours[0].in_flight == 0


@pytest.fixture
def quiet_heap() -> Iterator[None]:
    """What earlier tests left on the heap set aside, so a garbage collection of it cannot pause a
    timing measurement (after a few hundred tests a full collection takes long enough to show)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("quiet_heap")
async def test_pool_waiters_are_served_in_arrival_order(cluster: Cluster, start: StartPool) -> None:
    """3 instances of capacity 10, 90 clients: everyone waits about as long, nobody is refused."""
    for _ in range(3):
        cluster.add(seconds_per_char=0.04, capacity=10)  # 0.2 s a request
    fair_wait = 2 * 0.2  # 60 waiting for 30 slots
    # room for a busy machine: the fairness is in the spread of the waits, checked below
    settings = PoolSettings(queue_timeout=4 * fair_wait + 1.0, health_interval=60, attempts=1)
    pool = await start(make_pool(cluster, [FixedLimit(10)] * 3, settings=settings))
    waits = record_waits(pool)

    async def client() -> int:
        refused = 0
        for _ in range(4):
            try:
                await speak(pool, "你好你好你")
            except EngineOverloaded:
                refused += 1
        return refused

    refused = await asyncio.gather(*(client() for _ in range(90)))
    steady = sorted(waits[90:])  # after everyone's first request
    median, p99 = statistics.median(steady), steady[int(0.99 * len(steady)) - 1]
    assert sum(refused) == 0
    assert p99 <= 2 * median, (median, p99)
    assert sum(b.out_of_memory for b in cluster.behaviours) == 0
