"""The one synthesis path: text pipeline → engine → audio pipeline → encoded bytes.

The synchronous API, its streaming variants, the CLI (and later the job
worker and the batch client) all call :meth:`Pipeline.plan` and then consume
:meth:`Pipeline.encode` (or :meth:`Pipeline.pcm`); none has a copy of it.

``plan`` does every check (model, voice, language, limits, capabilities)
before any engine time is spent, so a bad request fails before the first
byte. Synthesis then runs segment by segment: a consumer that stops
iterating (a client that hung up) stops the remaining segments, and a
segment that fails ends the stream with an error instead of leaving a hole.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np

from voxserve.audio import (
    FORMATS,
    AudioFormat,
    StreamEncoder,
    change_tempo_and_pitch,
    fade,
    fade_in,
    fade_out,
    fade_samples,
    level,
    silence,
)
from voxserve.cache import SegmentCache, cache_key
from voxserve.config import Settings
from voxserve.engines.base import PCM, Engine, Reference, SegmentRequest
from voxserve.errors import (
    AudioTooLong,
    CapabilityMissing,
    EmptyAudio,
    InvalidRequest,
    NothingToSay,
    NotReady,
    PayloadTooLarge,
    UnknownModel,
    UnknownVoice,
    UnsupportedValue,
)
from voxserve.metrics import Metrics
from voxserve.text import (
    TextNormalizer,
    detect_language,
    fit,
    is_speakable,
    language_code,
    languages_in,
    sentences,
)
from voxserve.text.markup import expand_ssml, has_marks, has_pronunciations, split_pauses, strip_marks
from voxserve.voices import Voice, VoiceLibrary
from voxserve.voices.blend import blend_parts_known, is_blend

log = logging.getLogger(__name__)

SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
SPEED = (0.25, 4.0)  # the range of speed every door accepts; plan() checks it too
PITCH = (-12.0, 12.0)  # semitones
#: Faster than any voice speaks at speed 1, so the planned estimate of audio is a lower bound.
FASTEST_CHARS_PER_SECOND = {"zh": 9.0, "ja": 12.0}
FASTEST_OTHER_CHARS_PER_SECOND = 25.0
#: Where a request's segments wait for an engine: someone listening goes before a job.
SPEECH_PRIORITY = 1
JOB_PRIORITY = 0


@dataclass(frozen=True)
class SpeechRequest:
    """What a client asks for, whatever door it came in by."""

    input: str
    model: str | None = None
    voice: str | None = None
    response_format: str = "mp3"
    speed: float = 1.0
    pitch: float = 0.0
    language: str | None = None
    seed: int | None = None
    emotion: str | None = None
    instructions: str | None = None
    sample_rate: int | None = None
    cache: str = "use"  # "use"; "refresh": synthesize anew and store; "off": neither read nor store


@dataclass(frozen=True)
class Segment:
    """One raw piece of the input, its language and the pause that follows it."""

    text: str
    language: str
    pause_after: float


@dataclass(frozen=True)
class Plan:
    """A checked request: everything synthesis needs, decided up front."""

    request: SpeechRequest
    engine: Engine
    voice: str
    reference: Reference | None
    segments: tuple[Segment, ...]
    audio_format: AudioFormat
    output_rate: int
    engine_speed: float
    tempo: float
    ignored: tuple[str, ...]
    max_audio_seconds: float
    priority: int = SPEECH_PRIORITY
    submitted: float = field(default_factory=time.monotonic)  # orders its segments in engine queues

    @property
    def chars(self) -> int:
        return len(self.request.input)


def least_audio_seconds(segments: tuple[Segment, ...], speed: float) -> float:
    """The least audio the segments can make: every pause, and speech faster than anyone speaks."""
    total = 0.0
    for segment in segments:
        rate = FASTEST_CHARS_PER_SECOND.get(segment.language, FASTEST_OTHER_CHARS_PER_SECOND)
        total += segment.pause_after + sum(c.isalnum() for c in segment.text) / rate
    return total / speed


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

    @property
    def time_to_first_audio(self) -> float | None:
        return None if self.first_audio is None else self.first_audio - self.started

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def real_time_factor(self) -> float | None:
        return self.elapsed / self.audio_seconds if self.audio_seconds else None


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    if not (math.isfinite(value) and bounds[0] <= value <= bounds[1]):
        raise InvalidRequest(f"{name} is {value}; it must be from {bounds[0]:g} to {bounds[1]:g}", param=name)


def _check_audio_limit(plan: Plan, stats: Stats) -> None:
    """Enforced while producing: planning can only bound the audio from below."""
    if stats.audio_seconds > plan.max_audio_seconds:
        raise AudioTooLong(
            f"the audio passed the limit of {plan.max_audio_seconds:g} s for one request; "
            "split the text or raise the limit",
            param="input",
        )


def _processed(parts: list[PCM], rate: int, tempo: float, pitch: float) -> PCM:
    """A whole segment levelled, its tempo and pitch changed, and faded (milliseconds: in a thread)."""
    audio = change_tempo_and_pitch(level(np.concatenate(parts)), rate, tempo, pitch)
    return fade(audio, rate)


class Pipeline:
    """Plans and runs syntheses over a set of loaded engines."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        normalizer: TextNormalizer,
        settings: Settings,
        executor: Executor,
        metrics: Metrics,
        voices: VoiceLibrary | None = None,
        cache: SegmentCache | None = None,
    ) -> None:
        self.engines = dict(engines)
        self.voices = voices or VoiceLibrary(settings.data_dir / "voices")
        self.cache = cache
        self.normalizer = normalizer
        self.settings = settings
        self.metrics = metrics
        self._executor = executor

    @property
    def languages(self) -> list[str]:
        """Every language some engine here speaks."""
        return sorted(set().union(*(engine.capabilities.languages for engine in self.engines.values())))

    @property
    def ready(self) -> bool:
        return self.normalizer.loaded and all(engine.ready for engine in self.engines.values())

    # -- planning: every check, no engine time -------------------------------------------

    def plan(
        self,
        request: SpeechRequest,
        max_chars: int | None = None,
        require_ready: bool = True,
        max_audio_seconds: float | None = None,
        priority: int = SPEECH_PRIORITY,
    ) -> Plan:
        """Check a request and decide how to serve it; raises a VoxserveError if it cannot be.

        ``max_chars`` and ``max_audio_seconds`` replace the synchronous limits
        (jobs take much longer texts); a job may also be planned while engines
        still load. Blocking work (a long text takes seconds): call it in a thread.
        """
        self._check_input(request.input, max_chars)
        _check_range("speed", request.speed, SPEED)
        _check_range("pitch", request.pitch, PITCH)
        if request.language and language_code(request.language) not in self.languages:
            raise UnsupportedValue(
                f"language {request.language!r} is not spoken here; "
                f"choose one of {', '.join(self.languages)}",
                param="language",
            )
        text = expand_ssml(request.input)
        library_voice = self._library_voice(request.voice)
        cloned = library_voice is not None and library_voice.kind == "cloned"
        reference = self.voices.reference(library_voice) if cloned and library_voice else None
        wanted = library_voice.blend if library_voice is not None and library_voice.blend else request.voice
        engine, voice = self._engine_and_voice(request, wanted, cloned, text)
        if require_ready and (not engine.ready or not self.normalizer.loaded):
            raise NotReady(f"engine {engine.name!r} is still loading; retry shortly")
        caps = engine.capabilities
        audio_format = FORMATS.get(request.response_format)
        if audio_format is None:
            raise UnsupportedValue(
                f"response_format {request.response_format!r} is not supported; "
                f"choose one of {', '.join(FORMATS)}",
                param="response_format",
            )
        wanted_rate = caps.sample_rate if request.sample_rate is None else request.sample_rate
        if wanted_rate not in SAMPLE_RATES:
            raise UnsupportedValue(
                f"sample_rate {wanted_rate} is not supported; choose one of "
                f"{', '.join(map(str, SAMPLE_RATES))}",
                param="sample_rate",
            )
        segments = tuple(self._segments(request, text, engine))
        if not segments:
            raise NothingToSay(
                "input has pauses or markup but no words to speak; give some text", param="input"
            )
        audio_limit = max_audio_seconds or self.settings.max_audio_seconds
        least = least_audio_seconds(segments, request.speed)
        if least > audio_limit:
            raise AudioTooLong(
                f"input would make at least {least:.0f} s of audio (pauses and speed count); "
                f"the limit is {audio_limit:g} s",
                param="input",
            )
        low, high = caps.native_speed
        engine_speed = min(max(request.speed, low), high)
        return Plan(
            request=request,
            engine=engine,
            voice=voice,
            reference=reference,
            segments=segments,
            audio_format=audio_format,
            output_rate=audio_format.output_rate(wanted_rate),
            engine_speed=engine_speed,
            tempo=request.speed / engine_speed,
            ignored=self._ignored_options(request, engine, text),
            max_audio_seconds=audio_limit,
            priority=priority,
        )

    def _check_input(self, text: str, max_chars: int | None) -> None:
        if not text.strip():
            raise InvalidRequest("input is empty; give the text to speak", param="input")
        if max_chars is not None and len(text) > max_chars:
            raise PayloadTooLarge(
                f"input is {len(text)} characters; the limit for a job is {max_chars}", param="input"
            )
        limit = self.settings.max_input_chars
        if max_chars is None and len(text) > limit:
            raise PayloadTooLarge(
                f"input is {len(text)} characters; the limit for a synchronous request is {limit}. "
                "Submit longer texts as a job (POST /v1/jobs).",
                param="input",
            )
        if not is_speakable(text):
            raise UnsupportedValue("input has nothing to speak (no letters or digits)", param="input")

    def require_cloning(self, model: str | None, param: str) -> None:
        """Refuse reference audio up front when no engine (or not the named one) can clone with it."""
        name = self.settings.model_aliases.get(model, model) if model else None
        engines = [self.engines[name]] if name in self.engines else list(self.engines.values())
        if not any(engine.capabilities.cloning for engine in engines):
            which = f"engine {name!r} cannot" if name in self.engines else "the engines here cannot"
            raise CapabilityMissing(
                f"{which} clone voices from reference audio; use an engine with cloning", param=param
            )

    def _library_voice(self, name: str | None) -> Voice | None:
        """The library voice a request names, if it names one rather than an engine's own voice."""
        if not name or is_blend(name) or name.lower() in self.settings.voice_aliases:
            return None
        if any(engine.capabilities.voice(name) for engine in self.engines.values()):
            return None
        return self.voices.get(name)

    def _engine_and_voice(
        self, request: SpeechRequest, wanted: str | None, cloning: bool, text: str
    ) -> tuple[Engine, str]:
        """The engine and its voice id: ``wanted`` (an engine voice or a blend formula), or for a
        clone the engine's default (the reference carries the voice)."""
        if request.model:
            name = self.settings.model_aliases.get(request.model, request.model)
            engine = self.engines.get(name)
            if engine is None:
                known = sorted([*self.engines, *self.settings.model_aliases])
                raise UnknownModel(
                    f"model {request.model!r} does not exist; available: {', '.join(known)}",
                    param="model",
                )
            if cloning:
                self.require_cloning(request.model, "voice")
            candidates = [engine]
        else:
            candidates = self._capable_engines(request, cloning, text)
        if cloning or not wanted:
            return candidates[0], candidates[0].capabilities.default_voice
        for engine in candidates:
            voice = self._voice_on(engine, wanted)
            if voice:
                return engine, voice
        available = sorted(v.id for e in candidates for v in e.capabilities.voices)
        raise UnknownVoice(
            f"voice {request.voice!r} is not known"
            + (f" to model {request.model!r}" if request.model else "")
            + f"; available: {', '.join(available)}, a voice from the library (GET /v1/voices), "
            "or an OpenAI voice name such as 'alloy'",
            param="voice",
        )

    def _capable_engines(self, request: SpeechRequest, cloning: bool, text: str) -> list[Engine]:
        """Engines that can serve a request naming no model, the default first.

        Languages and cloning are requirements; engines that honour the
        request's emotion or instructions come before those that would ignore them.
        """
        default = self.engines.get(self.settings.default_engine)
        ordered = [*([default] if default else []), *(e for e in self.engines.values() if e is not default)]
        if cloning:
            ordered = [engine for engine in ordered if engine.capabilities.cloning]
            if not ordered:
                raise CapabilityMissing(
                    "the engines here cannot clone voices from reference audio; configure one that can",
                    param="voice",
                )
        languages = {language_code(request.language)} if request.language else languages_in(strip_marks(text))
        capable = [engine for engine in ordered if languages <= engine.capabilities.languages]
        if not capable:
            raise CapabilityMissing(
                f"no engine here speaks {', '.join(sorted(languages))}",
                param="language" if request.language else "input",
            )

        def ignores(engine: Engine) -> int:
            return len(self._ignored_options(request, engine, text))

        return sorted(capable, key=ignores)

    def _voice_on(self, engine: Engine, name: str) -> str | None:
        """The engine's voice for a name: its own, a blend of its own, or an alias (else its default)."""
        caps = engine.capabilities
        if caps.voice(name):
            return name
        if is_blend(name):
            return name if caps.blends and blend_parts_known(name, caps) else None
        target = self.settings.voice_aliases.get(name.lower())
        if target is None:
            return None
        return target if caps.voice(target) else caps.default_voice

    def _segments(self, request: SpeechRequest, text: str, engine: Engine) -> Iterator[Segment]:
        """Segments of the text; a ``[pause:…]`` mark sets the pause after the segment it ends."""
        previous: Segment | None = None
        for part, pause in split_pauses(text):
            for segment in self._part_segments(request, part, engine):
                if previous is not None:
                    yield previous
                previous = segment
            if previous is not None and pause is not None:
                previous = replace(previous, pause_after=pause)
        if previous is not None:
            yield previous

    def _part_segments(self, request: SpeechRequest, text: str, engine: Engine) -> Iterator[Segment]:
        caps = engine.capabilities
        forced = language_code(request.language) if request.language else None
        limit = min(self.settings.segment_chars, caps.max_segment_chars)
        for sentence in sentences(text):
            pieces = fit(sentence, limit)
            for index, piece in enumerate(pieces):
                spoken = strip_marks(piece)
                if not is_speakable(spoken) and not has_marks(piece):
                    continue
                language = forced or detect_language(spoken)
                if language not in caps.languages:
                    raise CapabilityMissing(
                        f"engine {engine.name!r} does not speak {language!r} "
                        f"(it speaks {', '.join(sorted(caps.languages))}); "
                        f"choose a model that does, such as {self.settings.default_engine!r}",
                        param="language" if forced else "input",
                    )
                last = index == len(pieces) - 1
                yield Segment(
                    piece,
                    language,
                    self.settings.sentence_pause if last else self.settings.clause_pause,
                )

    @staticmethod
    def _ignored_options(request: SpeechRequest, engine: Engine, text: str) -> tuple[str, ...]:
        """What the engine will not honour; ``text`` is the input with its SSML already expanded."""
        caps = engine.capabilities
        ignored = []
        if request.emotion and not caps.emotions:
            ignored.append("emotion")
        if request.instructions and not caps.instructions:
            ignored.append("instructions")
        if request.seed is not None and not caps.seeded:
            ignored.append("seed")
        if not caps.markup and has_pronunciations(text):
            ignored.append("markup")
        return tuple(ignored)

    # -- running: segment by segment -------------------------------------------------------

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
        engine = plan.engine
        rate = engine.capabilities.sample_rate
        try:
            async for index, segment, text in self._normalized(plan, start):
                async for chunk in self._render(plan, segment, text):
                    if stats.first_audio is None:
                        stats.first_audio = time.perf_counter()
                        self.metrics.time_to_first_audio.labels(engine.name).observe(stats.elapsed)
                    stats.audio_seconds += chunk.size / rate
                    _check_audio_limit(plan, stats)
                    yield index, chunk, False
                pause = silence(segment.pause_after / plan.request.speed, rate)
                stats.segments_done += 1
                stats.audio_seconds += pause.size / rate
                _check_audio_limit(plan, stats)
                yield index, pause, True
            self.metrics.requests.labels(engine.name, "ok").inc()
        except BaseException as exc:
            outcome = "canceled" if isinstance(exc, GeneratorExit | asyncio.CancelledError) else "error"
            self.metrics.requests.labels(engine.name, outcome).inc()
            raise
        finally:
            stats.finished = time.perf_counter()
            self.metrics.audio_seconds.labels(engine.name).inc(stats.audio_seconds)

    async def _normalized(self, plan: Plan, start: int) -> AsyncIterator[tuple[int, Segment, str]]:
        """Segments with their normalized text, the next one prepared while this one renders."""
        loop = asyncio.get_running_loop()

        def submit(segment: Segment) -> asyncio.Future[str]:
            if not self.normalizer.needed(segment.text):
                done: asyncio.Future[str] = loop.create_future()
                done.set_result(segment.text)
                return done
            return loop.run_in_executor(
                self._executor, self.normalizer.normalize, segment.text, segment.language
            )

        segments = plan.segments
        pending = submit(segments[start]) if start < len(segments) else None
        for index in range(start, len(segments)):
            assert pending is not None
            current = pending
            pending = submit(segments[index + 1]) if index + 1 < len(segments) else None
            yield index, segments[index], await current

    async def _render(self, plan: Plan, segment: Segment, text: str) -> AsyncIterator[PCM]:
        """One segment through the engine, refitted after normalization.

        A streaming engine's chunks go on as they arrive, at the engine's own
        level, with only the last few milliseconds held back for the fade out.
        Otherwise (or with tempo or pitch effects, which need the whole
        segment) the segment is collected, levelled, processed and faded.
        """
        engine = plan.engine
        rate = engine.capabilities.sample_rate
        limit = min(self.settings.segment_chars, engine.capabilities.max_segment_chars)
        requests = [
            SegmentRequest(
                text=piece,
                language=segment.language,
                voice=plan.voice,
                speed=plan.engine_speed,
                seed=plan.request.seed,
                emotion=plan.request.emotion,
                instructions=plan.request.instructions,
                reference=plan.reference,
                priority=plan.priority,
                submitted=plan.submitted,
            )
            for piece in fit(text if engine.capabilities.markup else strip_marks(text), limit)
        ]
        chunks = self._engine_chunks(engine, requests, plan.request.cache)
        if engine.capabilities.streaming and plan.tempo == 1.0 and not plan.request.pitch:
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
        yield await asyncio.to_thread(_processed, parts, rate, plan.tempo, plan.request.pitch)

    async def _engine_chunks(
        self, engine: Engine, requests: list[SegmentRequest], cache_mode: str
    ) -> AsyncIterator[PCM]:
        """Each request's audio: from the cache when it holds it, else from the engine (then stored)."""
        cache = self.cache if cache_mode != "off" else None
        for request in requests:
            key = cache_key(engine.name, engine.capabilities.sample_rate, request) if cache else None
            if cache and key and cache_mode == "use":
                cached = await asyncio.to_thread(cache.get, key)
                self.metrics.cache_lookups.labels(engine.name, "miss" if cached is None else "hit").inc()
                if cached is not None:
                    yield cached
                    continue
            made: list[PCM] = []
            async for chunk in engine.synthesize(request):
                if chunk.size:
                    made.append(chunk)
                    yield chunk
            self.metrics.segments.labels(engine.name).inc()
            if cache and key and made:
                await asyncio.to_thread(cache.put, key, np.concatenate(made))
                self.metrics.cache_bytes.set(cache.size)

    async def plan_in_thread(self, request: SpeechRequest) -> Plan:
        """``plan`` for a request someone waits on, off the event loop (4,096 characters: ~40 ms)."""
        return await asyncio.to_thread(self.plan, request)

    async def encode(self, plan: Plan, stats: Stats) -> AsyncGenerator[bytes, None]:
        """Encoded bytes of the plan's audio, chunk by chunk as segments finish."""
        encoder = StreamEncoder(plan.audio_format, plan.engine.capabilities.sample_rate, plan.output_rate)
        async for audio in self.pcm(plan, stats):
            data = await asyncio.to_thread(encoder.write, audio)
            if data:
                yield data
        tail = await asyncio.to_thread(encoder.finish)
        stats.encoded_samples = encoder.samples
        if tail:
            yield tail
