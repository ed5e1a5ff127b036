"""Rendering: a plan's segments through the engine and the audio pipeline, as they are made.

Segment by segment: the next segment's text is normalized while the engine
renders this one; each segment is looked up in the cache first; audio is
levelled, its tempo and pitch changed, faded and followed by its pause. A
consumer that stops iterating (a client that hung up) stops the remaining
segments, and a segment that fails ends the stream with an error instead of
leaving a hole.

An engine whose runs are expensive to start (a :class:`BatchEngine`, such as
GLM-TTS's command line, which loads its model every run) gets every segment
the cache does not hold in one run, and the segments are taken from it in
order as each is finished: the same levelling, effects, limits and progress,
one model load per request or job instead of one per segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from voxserve import tracing
from voxserve.audio import (
    StreamEncoder,
    change_tempo_and_pitch,
    fade,
    fade_in,
    fade_out,
    fade_samples,
    level,
    resample,
    silence,
)
from voxserve.cache import SegmentCache, cache_key
from voxserve.config import Settings
from voxserve.engines.base import BatchEngine, Engine, StreamAware, WordTimed
from voxserve.errors import AudioTooLong, EmptyAudio
from voxserve.metrics import Metrics
from voxserve.planning import Plan, Reader, Segment
from voxserve.text import TextNormalizer, fit
from voxserve.text.markup import strip_marks
from voxserve.values import PCM, SegmentRequest, WordTime

T = TypeVar("T")


@dataclass(frozen=True)
class SegmentTime:
    """Where one segment's speech is in the audio (seconds from its start; its pause comes after),
    and each of its words where its engine tells (:class:`voxserve.engines.base.WordTimed`)."""

    index: int
    text: str
    start: float
    end: float
    words: tuple[WordTime, ...] = ()
    speaker: str | None = None  # who speaks it, in a multi-voice text

    def shifted(self, by: float) -> SegmentTime:
        """The same segment ``by`` seconds later (in a longer audio it is part of)."""
        words = tuple(word.shifted(by) for word in self.words)
        return SegmentTime(self.index, self.text, self.start + by, self.end + by, words, self.speaker)

    def to_dict(self) -> dict[str, object]:
        found: dict[str, object] = {
            "index": self.index,
            "text": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }
        if self.speaker:
            found["speaker"] = self.speaker
        if self.words:
            found["words"] = [word.to_dict() for word in self.words]
        return found


@dataclass
class _Words:
    """A segment's word times as its requests are made (from the segment's start); ``known`` is
    False once one request had none (then the segment has sentence-level times only)."""

    items: list[WordTime] = field(default_factory=list)
    known: bool = True

    def add(self, timed: tuple[WordTime, ...] | None, at: float) -> None:
        if timed is None:
            self.known = False
        else:
            self.items.extend(word.shifted(at) for word in timed)

    def placed(self, begins: float, tempo: float) -> tuple[WordTime, ...]:
        """Where they are in the whole audio: the segment begins at ``begins``, played at ``tempo``."""
        if not self.known:
            return ()
        return tuple(word.shifted(begins, 1 / tempo) for word in self.items)


@dataclass
class Stats:
    """What one synthesis did, for the request log line and metrics."""

    chars: int
    started: float = field(default_factory=time.perf_counter)
    first_audio: float | None = None
    finished: float | None = None
    audio_seconds: float = 0.0
    segments_done: int = 0
    encoded_samples: int = 0  # at the output rate, once encode() has finished
    client_left: bool = False  # the client hung up before the first audio
    words: bool = False  # the sink wants word times (an engine that knows them is then not cached)
    timeline: list[SegmentTime] = field(default_factory=list)  # each segment, once its audio is made

    @property
    def time_to_first_audio(self) -> float | None:
        return None if self.first_audio is None else self.first_audio - self.started

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def real_time_factor(self) -> float | None:
        return self.elapsed / self.audio_seconds if self.audio_seconds else None


def _check_audio_limit(plan: Plan, stats: Stats) -> None:
    """Enforced while producing: planning can only bound the audio from below."""
    if stats.audio_seconds > plan.max_audio_seconds:
        raise AudioTooLong(
            f"the audio passed the limit of {plan.max_audio_seconds:g} s for one request; "
            "split the text or raise the limit",
            param="input",
        )


def _processed(parts: list[PCM], rate: int, tempo: float, pitch: float, to: int) -> PCM:
    """A whole segment levelled, its tempo and pitch changed, faded, and at the plan's rate ``to``
    (milliseconds: in a thread)."""
    audio = change_tempo_and_pitch(level(np.concatenate(parts)), rate, tempo, pitch)
    return resample(fade(audio, rate), rate, to)


@dataclass
class _Count:
    """One reader's share of a synthesis, for the metrics."""

    chars: int = 0
    audio_seconds: float = 0.0

    def add(self, chars: int, audio_seconds: float) -> None:
        self.chars += chars
        self.audio_seconds += audio_seconds


class EngineCalls:
    """Where a segment's audio comes from: one engine run per request."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def covers(self, request: SegmentRequest) -> bool:
        """Whether the request is already on its way (the cache is not asked for it)."""
        return False

    def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        return self.engine.synthesize(request)

    async def aclose(self) -> None:
        """Stop what is still running."""


class BatchCalls(EngineCalls):
    """One run of a batch engine for the given requests, taken in order; others run on their own."""

    def __init__(self, engine: BatchEngine, requests: Sequence[SegmentRequest]) -> None:
        super().__init__(engine)
        self._expected = deque(requests)
        self._run = engine.synthesize_batch(requests) if requests else None

    def covers(self, request: SegmentRequest) -> bool:
        return bool(self._expected) and self._expected[0] is request

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        if not self.covers(request) or self._run is None:  # a cache entry evicted since the batch began
            async for chunk in self.engine.synthesize(request):
                yield chunk
            return
        self._expected.popleft()
        try:
            yield await anext(self._run)
        except StopAsyncIteration:
            raise EmptyAudio(
                f"engine {self.engine.name!r} ended its batch before {request.text[:60]!r}"
            ) from None

    async def aclose(self) -> None:
        if self._run is not None:
            await self._run.aclose()


def _uncached(cache: SegmentCache, engine: Engine, requests: list[SegmentRequest]) -> list[SegmentRequest]:
    """The requests whose audio the cache does not hold (blocking: in a thread)."""
    rate = engine.capabilities.sample_rate
    return [request for request in requests if not cache.contains(cache_key(engine.name, rate, request))]


async def _iterate(items: Sequence[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


def requests_for(plan: Plan, segment: Segment, text: str, segment_chars: int) -> list[SegmentRequest]:
    """A segment's normalized text as engine requests, each within ``segment_chars`` and its
    reader's engine's own limit."""
    reader = plan.readers[segment.reader]
    caps = reader.engine.capabilities
    markup, limit = caps.markup, min(segment_chars, caps.max_segment_chars)
    return [
        SegmentRequest(
            text=piece,
            language=segment.language,
            voice=segment.voice or reader.voice.id,
            mix=() if segment.voice else reader.voice.mix,
            speed=reader.engine_speed,
            seed=plan.request.seed,
            emotion=reader.emotion,
            instructions=plan.request.instructions,
            reference=reader.voice.reference,
            priority=plan.priority,
            submitted=plan.submitted,
        )
        for piece in fit(text if markup else strip_marks(text), limit)
    ]


class Renderer:
    """Runs plans: engine calls, the segment cache, effects and encoding."""

    def __init__(
        self,
        normalizer: TextNormalizer,
        settings: Settings,
        executor: Executor,
        metrics: Metrics,
        cache: SegmentCache | None = None,
    ) -> None:
        self.normalizer = normalizer
        self.settings = settings
        self.metrics = metrics
        self.cache = cache
        self._executor = executor

    async def pcm(self, plan: Plan, stats: Stats) -> AsyncGenerator[PCM, None]:
        """The plan's audio at the engine's rate: levelled, effects applied, joined, as it is made."""
        async for _, chunk, _ in self._chunks(plan, stats):
            yield chunk

    async def segment_audio(
        self, plan: Plan, stats: Stats, start: int = 0
    ) -> AsyncGenerator[tuple[int, PCM], None]:
        """(index, audio with its following pause) for each segment from ``start`` on.

        Jobs record progress per segment and resume from ``start`` after a crash.
        """
        parts: list[PCM] = []
        async for index, chunk, ends_segment in self._chunks(plan, stats, start):
            parts.append(chunk)
            if ends_segment:
                yield index, np.concatenate(parts)
                parts = []

    async def _chunks(
        self, plan: Plan, stats: Stats, start: int = 0
    ) -> AsyncGenerator[tuple[int, PCM, bool], None]:
        """(segment index, audio, whether it ends the segment): each segment's audio, then its pause."""
        rate = plan.rate
        calls: dict[str, EngineCalls] = {}
        counts = [_Count() for _ in plan.readers]
        outcome = "error"
        with contextlib.ExitStack() as streams:
            for engine in plan.engines:  # each engine knows how many streams it serves
                if isinstance(engine, StreamAware):
                    streams.enter_context(engine.open_stream(plan.priority))
            try:
                prepared, calls = await self._prepared(plan, start)
                async for index, segment, requests in prepared:
                    reader = plan.readers[segment.reader]
                    begins = stats.audio_seconds
                    words = _Words(known=stats.words and isinstance(reader.engine, WordTimed))
                    engine_calls = calls[reader.engine.name]
                    async for chunk in self._render(plan, reader, segment, requests, engine_calls, words):
                        if stats.first_audio is None:
                            stats.first_audio = time.perf_counter()
                            self.metrics.time_to_first_audio.labels(plan.engine.name).observe(stats.elapsed)
                        stats.audio_seconds += chunk.size / rate
                        _check_audio_limit(plan, stats)
                        yield index, chunk, False
                    spoken = segment.shown or strip_marks(segment.text).strip()
                    counts[segment.reader].add(len(segment.text), stats.audio_seconds - begins)
                    placed = words.placed(begins, reader.tempo)
                    stats.timeline.append(
                        SegmentTime(index, spoken, begins, stats.audio_seconds, placed, reader.speaker)
                    )
                    pause = silence(segment.pause_after / reader.speed, rate)
                    stats.segments_done += 1
                    stats.audio_seconds += pause.size / rate
                    _check_audio_limit(plan, stats)
                    yield index, pause, True
                outcome = "ok"
            except BaseException as exc:
                if isinstance(exc, GeneratorExit | asyncio.CancelledError):
                    outcome = "canceled"
                raise
            finally:
                for engine_calls in calls.values():
                    await engine_calls.aclose()
                stats.finished = time.perf_counter()
                self._count(plan, stats, outcome, counts)

    def _count(self, plan: Plan, stats: Stats, outcome: str, counts: list[_Count]) -> None:
        """One synthesis in the metrics: a request for each engine, characters and audio for each
        reader's engine and voice. Library voices count as one label value: their number grows
        with every upload, a label's values must not."""
        for engine in plan.engines:
            self.metrics.requests.labels(engine.name, outcome).inc()
        for reader, count in zip(plan.readers, counts, strict=True):
            labels = (reader.engine.name, reader.voice.metric_name)
            self.metrics.audio_seconds.labels(*labels).inc(count.audio_seconds)
            self.metrics.characters.labels(*labels).inc(count.chars)
        if outcome == "ok":
            self.metrics.synthesis_duration.labels(plan.engine.name).observe(stats.elapsed)
            if stats.real_time_factor is not None:
                self.metrics.real_time_factor.labels(plan.engine.name).observe(stats.real_time_factor)

    async def _prepared(
        self, plan: Plan, start: int
    ) -> tuple[AsyncIterator[tuple[int, Segment, list[SegmentRequest]]], dict[str, EngineCalls]]:
        """The segments from ``start`` with their engine requests, and where each engine's audio
        comes from: a batch engine gets every segment it reads that the cache does not hold in one
        run (its segments are then all normalized up front)."""
        calls = {engine.name: EngineCalls(engine) for engine in plan.engines}
        batched = [engine for engine in plan.engines if isinstance(engine, BatchEngine)]
        if not batched:
            return self._normalized(plan, start), calls
        prepared = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._prepare_all, plan, start
        )
        cache = self.cache if plan.request.cache == "use" else None
        for batch in batched:
            wanted = [
                request
                for _, segment, requests in prepared
                if plan.readers[segment.reader].engine is batch
                for request in requests
            ]
            if cache is not None:
                wanted = await asyncio.to_thread(_uncached, cache, batch, wanted)
            calls[batch.name] = BatchCalls(batch, wanted)
        return _iterate(prepared), calls

    def all_cached(self, plan: Plan) -> bool:
        """Whether the segment cache holds every segment's audio (``voxserve say`` then loads no
        engine). The normalizers must be loaded where a segment needs them. Blocking."""
        cache = self.cache if plan.request.cache == "use" else None
        if cache is None:
            return False
        return not any(
            _uncached(cache, plan.readers[segment.reader].engine, requests)
            for _, segment, requests in self._prepare_all(plan, 0)
        )

    def _prepare_all(self, plan: Plan, start: int) -> list[tuple[int, Segment, list[SegmentRequest]]]:
        """Every segment normalized and cut into requests at once (a batch needs them all up front)."""
        chars = self.settings.segment_chars
        return [
            (index, segment, requests_for(plan, segment, self._normalize(segment), chars))
            for index, segment in enumerate(plan.segments)
            if index >= start
        ]

    def _normalize(self, segment: Segment) -> str:
        if not self.normalizer.needed(segment.text):
            return segment.text
        return self.normalizer.normalize(segment.text, segment.language)

    async def _normalized(
        self, plan: Plan, start: int
    ) -> AsyncIterator[tuple[int, Segment, list[SegmentRequest]]]:
        """Segments with their requests, the next one normalized while this one renders."""
        loop = asyncio.get_running_loop()

        def submit(segment: Segment) -> asyncio.Future[str]:
            if not self.normalizer.needed(segment.text):
                done: asyncio.Future[str] = loop.create_future()
                done.set_result(segment.text)
                return done
            return loop.run_in_executor(self._executor, self._normalize, segment)

        segments = plan.segments
        pending = submit(segments[start]) if start < len(segments) else None
        for index in range(start, len(segments)):
            assert pending is not None
            current = pending
            pending = submit(segments[index + 1]) if index + 1 < len(segments) else None
            segment = segments[index]
            yield index, segment, requests_for(plan, segment, await current, self.settings.segment_chars)

    async def _render(
        self,
        plan: Plan,
        reader: Reader,
        segment: Segment,
        requests: list[SegmentRequest],
        calls: EngineCalls,
        words: _Words,
    ) -> AsyncIterator[PCM]:
        """One segment (its requests) through its reader's engine.

        A streaming engine's chunks go on as they arrive, at the engine's own
        level, with only the last few milliseconds held back for the fade out.
        Otherwise (with tempo or pitch effects, which need the whole segment,
        or in a multi-voice text, whose voices are levelled alike and brought
        to one rate) the segment is collected, levelled, processed and faded.
        """
        engine = reader.engine
        rate = engine.capabilities.sample_rate
        chunks = self._engine_chunks(calls, requests, plan.request.cache, words)
        alone = not plan.multi_voice and reader.tempo == 1.0 and not plan.request.pitch
        if engine.capabilities.streaming and alone:
            held: PCM | None = None
            tail = fade_samples(rate)
            async for chunk in chunks:
                joined = fade_in(chunk, tail) if held is None else np.concatenate([held, chunk])
                held = joined[-tail:]
                if joined.size > tail:
                    yield joined[:-tail]
            if held is None:
                raise EmptyAudio(f"engine {engine.name!r} returned no audio for {segment.text[:60]!r}")
            yield fade_out(held, tail)
            return
        parts = [chunk async for chunk in chunks]
        if not parts:
            raise EmptyAudio(f"engine {engine.name!r} returned no audio for {segment.text[:60]!r}")
        yield await asyncio.to_thread(_processed, parts, rate, reader.tempo, plan.request.pitch, plan.rate)

    async def _engine_chunks(
        self, calls: EngineCalls, requests: list[SegmentRequest], cache_mode: str, words: _Words
    ) -> AsyncIterator[PCM]:
        """Each request's audio: from the cache when it holds it, else from the engine (then stored).
        An engine that tells word times has them stored with the audio; a request that wants them
        (``words.known``) takes the audio from the cache only with its words."""
        engine = calls.engine
        rate = engine.capabilities.sample_rate
        cache = self.cache if cache_mode != "off" else None
        timed = engine if isinstance(engine, WordTimed) else None
        made_samples = 0
        for request in requests:
            key = cache_key(engine.name, rate, request) if cache else None
            if cache and key and cache_mode == "use":
                at = made_samples / rate
                cached = None if calls.covers(request) else await self._cached(cache, key, words, at)
                self.metrics.cache_lookups.labels(engine.name, "miss" if cached is None else "hit").inc()
                if cached is not None:
                    made_samples += cached.size
                    yield cached
                    continue
            made: list[PCM] = []
            span = tracing.start("engine.call", engine=engine.name, chars=len(request.text))
            try:
                async for chunk in calls.synthesize(request):
                    if chunk.size:
                        made.append(chunk)
                        yield chunk
            finally:
                span.end()
            told = timed.words_of(request) if timed is not None else None  # taken, wanted or not
            if words.known:
                words.add(told, made_samples / rate)
            made_samples += sum(chunk.size for chunk in made)
            self.metrics.segments.labels(engine.name).inc()
            if cache and key and made:
                if timed is not None:
                    await asyncio.to_thread(cache.put_words, key, told)
                await asyncio.to_thread(cache.put, key, np.concatenate(made))
                self.metrics.cache_bytes.set(cache.size)

    @staticmethod
    async def _cached(cache: SegmentCache, key: str, words: _Words, at: float) -> PCM | None:
        """A request's audio from the cache, with its word times (from ``at`` seconds into the
        segment) when they are wanted: without them it is a miss."""
        if not words.known:
            return await asyncio.to_thread(cache.get, key)
        stored, told = await asyncio.to_thread(cache.words, key)
        audio = await asyncio.to_thread(cache.get, key) if stored else None
        if audio is not None:
            words.add(told, at)
        return audio

    async def encode(self, plan: Plan, stats: Stats) -> AsyncGenerator[bytes, None]:
        """Encoded bytes of the plan's audio, chunk by chunk as segments finish."""
        encoder = StreamEncoder(plan.audio_format, plan.rate, plan.output_rate)
        async for audio in self.pcm(plan, stats):
            span = tracing.start("encode", format=plan.audio_format.name, samples=audio.size)
            data = await asyncio.to_thread(encoder.write, audio)
            span.end()
            if data:
                yield data
        tail = await asyncio.to_thread(encoder.finish)
        stats.encoded_samples = encoder.samples
        if tail:
            yield tail
