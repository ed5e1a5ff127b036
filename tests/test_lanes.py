"""Embedded engines on lanes: a lone segment runs on the all-threads runner, concurrent segments on
one-thread runners of their own, never more at once than the lanes, in the line's order."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from voxserve.engines.embedded import EmbeddedEngine
from voxserve.values import PCM, Capabilities, SegmentRequest, VoiceInfo

SPEECH, JOB = 10, 0  # priorities: a synchronous request's segments go before a job's


class Runner:
    def __init__(self, threads: int) -> None:
        self.threads = threads


class Recording(EmbeddedEngine[Runner]):
    """Each call takes 50 ms and notes its text, its runner's threads and how many ran at once."""

    def __init__(self, threads: int, lanes: int) -> None:
        voices = (VoiceInfo(id="tone", engine="lanes", languages=("en",)),)
        capabilities = Capabilities(languages=frozenset({"en"}), voices=voices, sample_rate=16000)
        super().__init__("lanes", capabilities, ThreadPoolExecutor(8), threads=threads, lanes=lanes)
        self.done: list[tuple[str, int]] = []
        self.made: list[int] = []
        self.at_once = 0
        self.most_at_once = 0
        self._count = threading.Lock()

    def _load(self) -> None:
        """Nothing to share."""

    def _new_runner(self, threads: int) -> Runner:
        self.made.append(threads)
        return Runner(threads)

    def _warm_up_request(self) -> SegmentRequest:
        return SegmentRequest(text="warm", language="en", voice="tone")

    def _render(self, runner: Runner, request: SegmentRequest) -> PCM:
        with self._count:
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
        time.sleep(0.05)
        with self._count:
            self.at_once -= 1
        self.done.append((request.text, runner.threads))
        return np.zeros(160, np.float32)


async def speak(engine: Recording, text: str, priority: int = SPEECH, submitted: float = 0.0) -> None:
    request = SegmentRequest(text=text, language="en", voice="tone", priority=priority, submitted=submitted)
    async for _ in engine.synthesize(request):
        pass


async def loaded(threads: int, lanes: int) -> Recording:
    engine = Recording(threads, lanes)
    await engine.load()
    engine.done.clear()
    return engine


async def test_two_lanes_of_one_thread_and_one_runner_of_all_for_a_lone_stream() -> None:
    engine = await loaded(threads=2, lanes=2)
    assert sorted(engine.made) == [1, 1, 2]
    for text in ("one", "two", "three"):  # one stream: each segment alone
        await speak(engine, text)
    assert engine.done == [("one", 2), ("two", 2), ("three", 2)]


async def test_concurrent_segments_run_on_narrow_runners_at_most_lanes_at_once() -> None:
    engine = await loaded(threads=2, lanes=2)
    await asyncio.gather(*(speak(engine, f"s{i}") for i in range(6)))
    assert engine.most_at_once == 2
    assert sum(threads == 1 for _, threads in engine.done) >= 5  # only the first may have run alone


async def test_one_lane_is_one_runner_with_every_thread() -> None:
    engine = await loaded(threads=4, lanes=1)
    assert engine.made == [4]
    await asyncio.gather(*(speak(engine, f"s{i}") for i in range(3)))
    assert engine.most_at_once == 1 and {threads for _, threads in engine.done} == {4}


async def test_a_requests_segment_goes_before_a_jobs_backlog() -> None:
    """A job's segments wait behind a synchronous request's: its first audio waits for at most the
    segments already running, not for the job."""
    engine = await loaded(threads=2, lanes=2)
    backlog = [asyncio.create_task(speak(engine, f"job {i}", JOB, submitted=i)) for i in range(8)]
    await asyncio.sleep(0.01)  # the job's first two run, six wait
    await speak(engine, "hello", SPEECH, submitted=100.0)
    done_before = [text for text, _ in engine.done].index("hello")
    assert done_before <= 3, engine.done
    await asyncio.gather(*backlog)


async def test_while_two_streams_are_open_neither_takes_every_thread() -> None:
    """A segment that finds nothing running still stays narrow while another stream is under way
    (between its segments), so a wide run never competes with narrow ones for the cores."""
    engine = await loaded(threads=2, lanes=2)
    with engine.open_stream():
        await speak(engine, "alone")
        with engine.open_stream():
            await speak(engine, "two streams")
        await speak(engine, "alone again")
    assert engine.done == [("alone", 2), ("two streams", 1), ("alone again", 2)]


async def test_the_pace_is_measured_from_the_warm_up_then_from_each_call() -> None:
    engine = await loaded(threads=2, lanes=2)
    warm = engine.seconds_per_char
    assert warm is not None and 0.05 / 19 <= warm < 0.2 / 19, "50 ms for the 19 of 'warm warm warm warm'"
    for _ in range(30):
        await speak(engine, "a" * 100)  # 50 ms for 100 characters: the pace comes down towards 0.5 ms
    assert engine.seconds_per_char is not None and engine.seconds_per_char < 0.001


async def test_idle_for_a_priority_while_no_stream_of_it_or_above_is_open() -> None:
    engine = await loaded(threads=2, lanes=1)
    assert engine.idle_for(SPEECH) and engine.idle_for(JOB)
    with engine.open_stream(JOB):
        assert engine.idle_for(SPEECH), "a speech request goes before a job's segments"
        assert not engine.idle_for(JOB)
        with engine.open_stream(SPEECH):
            assert not engine.idle_for(SPEECH), "another listener holds the engine, between segments too"
        assert engine.idle_for(SPEECH)
    assert engine.idle_for(JOB)
