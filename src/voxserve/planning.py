"""Planning: every check a request needs, and every decision about how to serve it, before engine time.

:meth:`Planner.plan` takes a :class:`~voxserve.request.SpeechRequest` (whose
fields are already in range) and checks what needs the engines and the text:
the model and voice (through :mod:`voxserve.selection`), markup, the language
of every sentence, the text and audio limits, capabilities, the output format
and rate. The :class:`Plan` it returns is all that rendering needs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial

from voxserve import tracing
from voxserve.audio import FORMATS, AudioFormat
from voxserve.config import Settings
from voxserve.engines.base import Elsewhere, Engine, Paced
from voxserve.errors import (
    AudioTooLong,
    CapabilityMissing,
    EngineUnavailable,
    InvalidRequest,
    NothingToSay,
    NotReady,
    PayloadTooLarge,
    UnsupportedValue,
    VoxserveError,
)
from voxserve.request import SAMPLE_RATES, SPEED, Role, SpeechRequest
from voxserve.selection import ChosenVoice, Selection, ignored_options
from voxserve.text import TextNormalizer, detect_language, fit, is_speakable, language_code, lead, sentences
from voxserve.text.markup import Voicing, has_marks, marked_language, split_pauses, strip_marks
from voxserve.text.normalize import LONG_DIGITS
from voxserve.text.script import Passage, passages
from voxserve.text.segment import CLAUSE_MARK
from voxserve.values import Capabilities
from voxserve.voices import EVERYONE, Viewer
from voxserve.voices.lexicons import MAX_GROWTH, Lexicons, Rewriter, rewriter

#: Faster than any voice speaks at speed 1, so the planned estimate of audio is a lower bound.
FASTEST_CHARS_PER_SECOND = {"zh": 9.0, "ja": 12.0}
FASTEST_OTHER_CHARS_PER_SECOND = 25.0
#: A long run of digits is read one by one, in fours: 2.7–2.9 digits a second at speed 1 with every
#: embedded voice (en and zh), so a flood of digits meets the audio limit before it meets an engine.
FASTEST_SPELLED_DIGITS_PER_SECOND = 3.2
#: Where a request's segments wait for an engine: someone listening goes before a job.
SPEECH_PRIORITY = 1
JOB_PRIORITY = 0
#: Readers one request may have (voices, with their emotions and rates): a cast, not a crowd.
MAX_READERS = 32


@dataclass(frozen=True)
class Profile:
    """How a kind of request is planned: its limits, where its segments wait, whether the engines
    must be loaded, and whether someone listens as it streams (whose first audio may then come from
    a short first piece). The planner holds the two there are, ``speech`` and ``job``."""

    kind: str  # named in a limit's message: "a synchronous request", "a job"
    max_chars: int
    max_audio_seconds: float
    priority: int = SPEECH_PRIORITY
    require_ready: bool = True
    listening: bool = False
    hint: str = ""  # what to do instead, said when the text is over the limit


def speech_profile(settings: Settings) -> Profile:
    """A request someone waits on (``max_input_chars``, ``max_audio_seconds``)."""
    hint = " Submit longer texts as a job (POST /v1/jobs)."
    return Profile("a synchronous request", settings.max_input_chars, settings.max_audio_seconds, hint=hint)


def job_profile(settings: Settings) -> Profile:
    """A job (``jobs.max_chars``, ``jobs.max_audio_seconds``), and ``voxserve say``, which makes a file."""
    jobs = settings.jobs
    return Profile("a job", jobs.max_chars, jobs.max_audio_seconds, JOB_PRIORITY)


def check_input(text: str, profile: Profile) -> None:
    """The text's own checks, before any other: there is one, and it is within the profile's limit."""
    if not text.strip():
        raise InvalidRequest("input is empty; give the text to speak", param="input")
    if len(text) > profile.max_chars:
        raise PayloadTooLarge(
            f"input is {len(text)} characters; the limit for {profile.kind} is {profile.max_chars}."
            + profile.hint,
            param="input",
        )
    if not is_speakable(text):
        raise UnsupportedValue("input has nothing to speak (no letters or digits)", param="input")


@dataclass(frozen=True)
class Segment:
    """One raw piece of the input, its language and the pause that follows it."""

    text: str
    language: str
    pause_after: float
    voice: str | None = None  # a native voice of its language, where it differs from its reader's
    reader: int = 0  # which of the plan's readers reads it
    shown: str | None = None  # its text as written, where a lexicon changed what is read


@dataclass(frozen=True)
class Reader:
    """Who reads a passage of the input: its engine and voice, and the options it is read with (the
    request's, or a multi-voice text's own for the passage). ``speaker``: the name the input gave it
    (a script's speaker, an SSML voice name), shown in captions; None for the request's own voice."""

    engine: Engine
    voice: ChosenVoice
    speed: float
    engine_speed: float
    emotion: str | None
    speaker: str | None = None

    @property
    def tempo(self) -> float:
        """What the audio pipeline changes: the speed the engine could not take itself."""
        return self.speed / self.engine_speed


@dataclass(frozen=True)
class Plan:
    """A checked request: everything synthesis needs, decided up front. A multi-voice text has a
    reader per voice; each segment says which reads it. The audio is made at ``rate``: the highest
    of the readers' engines' rates (the others' segments are resampled to it)."""

    request: SpeechRequest
    readers: tuple[Reader, ...]
    segments: tuple[Segment, ...]
    audio_format: AudioFormat
    output_rate: int
    ignored: tuple[str, ...]
    max_audio_seconds: float
    priority: int = SPEECH_PRIORITY
    submitted: float = field(default_factory=time.monotonic)  # orders its segments in engine queues
    #: the lexicons the text was read with: (id, name, entries used)
    lexicons: tuple[tuple[str, str, int], ...] = ()

    @property
    def engine(self) -> Engine:
        """The first reader's engine (the only one, unless the text is multi-voice)."""
        return self.readers[0].engine

    @property
    def voice(self) -> ChosenVoice:
        """The first reader's voice (the only one, unless the text is multi-voice)."""
        return self.readers[0].voice

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine a reader uses, each once, in the order they first read."""
        return tuple({reader.engine.name: reader.engine for reader in self.readers}.values())

    @property
    def voice_names(self) -> tuple[str, ...]:
        """Every voice a reader uses, each once, as the client knows them."""
        return tuple(dict.fromkeys(reader.voice.name for reader in self.readers))

    @property
    def rate(self) -> int:
        return max(engine.capabilities.sample_rate for engine in self.engines)

    @property
    def multi_voice(self) -> bool:
        return len(self.readers) > 1

    @property
    def chars(self) -> int:
        return len(self.request.input)

    def decisions(self) -> dict[str, object]:
        """What a job keeps of its plan, for its worker to check: the engines, the audio's rate and
        the file's, the segments (a resumed job counts its progress in them) and the voices."""
        return {
            "engine": ",".join(engine.name for engine in self.engines),
            "sample_rate": self.rate,
            "output_rate": self.output_rate,
            "segments": len(self.segments),
            "voice": ",".join(dict.fromkeys(reader.voice.id for reader in self.readers)),
        }

    def disagreement(self, decided: dict[str, object]) -> str | None:
        """How this plan differs from one made before (``decisions``), or None when it agrees."""
        now = self.decisions()
        changed = [f"{key} {was!r} → {now.get(key)!r}" for key, was in decided.items() if now.get(key) != was]
        return "; ".join(changed) or None


def _check_instructions(engine: str, caps: Capabilities, cloned: bool) -> None:
    """Instructions the engine's model would fail on are refused here, not sent (a 422 naming them)."""
    if caps.instructions_refused:
        raise UnsupportedValue(caps.instructions_refused, param="instructions")
    if cloned and caps.instructions and not caps.instructions_with_clones:
        raise UnsupportedValue(
            f"engine {engine!r} takes instructions only with its own voices, not a cloned one; "
            "drop instructions or choose one of its voices",
            param="instructions",
        )


def least_audio_seconds(segments: tuple[Segment, ...], speed: float) -> float:
    """The least audio the segments can make: every pause, and speech faster than anyone speaks."""
    total = 0.0
    for segment in segments:
        rate = FASTEST_CHARS_PER_SECOND.get(segment.language, FASTEST_OTHER_CHARS_PER_SECOND)
        spelled = sum(len(run) for run in LONG_DIGITS.findall(segment.text))
        letters = sum(c.isalnum() for c in segment.text) - spelled
        total += segment.pause_after + letters / rate + spelled / FASTEST_SPELLED_DIGITS_PER_SECOND
    return total / speed


def _as_written(segment: Segment, read_with: Rewriter | None) -> str | None:
    """A segment's text as its input wrote it, where lexicons changed what is read (captions)."""
    if read_with is None:
        return None
    return strip_marks(read_with.written(segment.text)).strip()


class Planner:
    """Turns requests into plans over the engines a :class:`Selection` holds."""

    def __init__(
        self, selection: Selection, normalizer: TextNormalizer, settings: Settings, lexicons: Lexicons
    ) -> None:
        self.selection = selection
        self.lexicons = lexicons
        self.normalizer = normalizer
        self.settings = settings
        #: Set once loading has ended (well or not): requests that came during it stop waiting.
        self.loaded = asyncio.Event()
        #: Engines that failed to load, with why: their requests are told so.
        self.failed: dict[str, str] = {}
        self.speech = speech_profile(settings)
        self.job = job_profile(settings)

    @tracing.traced("plan")
    def plan(self, request: SpeechRequest, profile: Profile | None = None, viewer: Viewer = EVERYONE) -> Plan:
        """Check a request and decide how to serve it; raises a VoxserveError if it cannot be.

        ``profile``: speech's limits unless another is given (a job's); ``viewer`` is whose
        library voices it may use (with keys: its own). A multi-voice text (SSML ``<voice>``, a
        script with a ``voices`` table) gets a reader per voice, each checked as a request of its
        own would be. Blocking work (a long text takes seconds): call it in a thread.
        """
        profile = profile or self.speech
        check_input(request.input, profile)
        if request.language and language_code(request.language) not in self.selection.languages:
            raise UnsupportedValue(
                f"language {request.language!r} is not spoken here; "
                f"choose one of {', '.join(self.selection.languages)}",
                param="language",
            )
        audio_format = FORMATS[request.response_format]
        readers: dict[Voicing, Reader] = {}
        segments: list[Segment] = []
        ignored: dict[str, None] = {}
        lexicons = self.lexicons.for_request(request.lexicons, viewer)
        read_with = rewriter(lexicons) if lexicons else None  # indexed once per set (kept)
        used = Counter[str]()
        for passage in self._read_lexicons(request, read_with, profile, used):
            key = passage.voicing
            try:
                reader, part, skipped = self._read(request, passage, profile, viewer, len(segments) == 0)
            except VoxserveError as exc:
                if passage.speaker is None or exc.param not in ("voice", "model", "emotion", "instructions"):
                    raise
                where = "voices" if request.role(passage.speaker) else "input"
                raise type(exc)(f"speaker {passage.speaker!r}: {exc.message}", param=where) from None
            number = list(readers).index(key) if key in readers else len(readers)
            if number >= MAX_READERS:
                raise InvalidRequest(
                    f"input has more than {MAX_READERS} voices (with their emotions and rates); "
                    f"the most one request may have is {MAX_READERS}",
                    param="input",
                )
            readers.setdefault(key, reader)
            segments += [
                replace(segment, reader=number, shown=_as_written(segment, read_with)) for segment in part
            ]
            ignored |= dict.fromkeys(skipped)
        if not segments:
            raise NothingToSay(
                "input has pauses or markup but no words to speak; give some text", param="input"
            )
        chosen = tuple(readers.values())
        audio_limit = profile.max_audio_seconds
        least = sum(least_audio_seconds((segment,), chosen[segment.reader].speed) for segment in segments)
        if least > audio_limit:
            raise AudioTooLong(
                f"input would make at least {least:.0f} s of audio (pauses and speed count); "
                f"the limit is {audio_limit:g} s",
                param="input",
            )
        rate = max(reader.engine.capabilities.sample_rate for reader in chosen)
        wanted_rate = rate if request.sample_rate is None else request.sample_rate
        if wanted_rate not in SAMPLE_RATES:
            raise UnsupportedValue(
                f"sample_rate {wanted_rate} is not supported; choose one of "
                f"{', '.join(map(str, SAMPLE_RATES))}",
                param="sample_rate",
            )
        return Plan(
            request=request,
            readers=chosen,
            segments=tuple(segments),
            audio_format=audio_format,
            output_rate=audio_format.output_rate(wanted_rate),
            ignored=tuple(ignored),
            max_audio_seconds=audio_limit,
            priority=profile.priority,
            lexicons=tuple((lexicon.id, lexicon.name, used[lexicon.id]) for lexicon in lexicons),
        )

    @staticmethod
    def _read_lexicons(
        request: SpeechRequest, read_with: Rewriter | None, profile: Profile, used: Counter[str]
    ) -> Iterator[Passage]:
        """The input's passages with its lexicons read into them (``used`` counts each lexicon's
        entries used), the text so read bounded at :data:`MAX_GROWTH` times the profile's limit.
        Entries of a language apply to passages in it: the one the request names, else detected."""
        forced = language_code(request.language) if request.language else None
        limit = MAX_GROWTH * profile.max_chars
        written = 0
        for found in passages(request.input, request.voices or ()):
            if read_with is None:
                yield found
                continue
            language = forced or detect_language(strip_marks(found.text))
            read = read_with.apply(found.text, language, limit - written)
            if read is None:
                raise PayloadTooLarge(
                    f"input would be over {limit} characters once its lexicons are read, the limit "
                    f"({MAX_GROWTH} times {profile.kind}'s)",
                    param="lexicons",
                )
            text, hits = read
            used += hits
            written += len(text)
            yield replace(found, text=text)

    def _read(
        self, request: SpeechRequest, passage: Passage, profile: Profile, viewer: Viewer, first: bool
    ) -> tuple[Reader, list[Segment], tuple[str, ...]]:
        """One passage's reader (its engine and voice, checked), its segments and what its engine
        ignores. The passage is read as a request of its own: the request's options, with the
        speaker's role (``voices``) and the SSML around it over them."""
        role = request.role(passage.speaker) if passage.speaker else None
        if passage.speaker and role is None:
            role = Role.model_construct(voice=passage.speaker)  # an SSML voice name not in the table
        speed = (role.speed if role and role.speed else request.speed) * passage.voicing.rate
        own = request.model_copy(
            update={
                "input": passage.text,
                "voice": role.voice if role else request.voice,
                "model": role.model if role and role.model else request.model,
                "emotion": passage.voicing.emotion or (role.emotion if role else None) or request.emotion,
                "speed": min(max(speed, SPEED[0]), SPEED[1]),
            }
        )
        text = passage.text
        engine, voice = self.selection.choose(own, text, viewer)
        reference = voice.reference
        if profile.require_ready:
            self._check_ready(engine)
        caps = engine.capabilities
        if reference is not None and caps.clone_needs_transcript and not reference.transcript:
            raise UnsupportedValue(
                f"engine {engine.name!r} clones a voice from its reference audio and what that audio "
                f"says, and voice {own.voice!r} has no transcript; add the voice again with "
                "prompt_text (POST /v1/voices), or use another engine",
                param="voice",
            )
        if own.instructions:
            _check_instructions(engine.name, caps, cloned=reference is not None)
        if own.emotion and caps.emotions and not caps.free_emotions and own.emotion not in caps.emotions:
            raise UnsupportedValue(
                f"engine {engine.name!r} does not know the emotion {own.emotion!r}; "
                f"choose one of {', '.join(sorted(caps.emotions))}, or describe it in instructions",
                param="emotion",
            )
        segments = tuple(self._segments(own, text, engine, profile.listening and first))
        if reference is None:
            segments = self._native_voices(segments, own.voice, engine, voice.id)
        low, high = caps.native_speed
        engine_speed = min(max(own.speed, low), high)
        reader = Reader(engine, voice, own.speed, engine_speed, own.emotion, passage.speaker)
        return reader, list(segments), ignored_options(own, engine, text)

    def _check_ready(self, engine: Engine) -> None:
        """503 before any work for an engine that cannot serve now: still loading, or (on servers)
        none of its instances answers, with why."""
        if engine.ready and self.normalizer.loaded:
            return
        if engine.name in self.failed:
            raise EngineUnavailable(f"engine {engine.name!r} failed to load: {self.failed[engine.name]}")
        down = engine.unavailable if isinstance(engine, Elsewhere) else None
        if down:
            raise EngineUnavailable(f"engine {engine.name!r} cannot serve: {down}")
        raise NotReady(f"engine {engine.name!r} is still loading; retry shortly")

    async def plan_in_thread(
        self,
        request: SpeechRequest,
        max_audio_seconds: float | None = None,
        viewer: Viewer = EVERYONE,
        listening: bool = False,
    ) -> Plan:
        """``plan`` for a request someone waits on, off the event loop (4,096 characters: ~40 ms);
        ``max_audio_seconds`` lowers the audio limit (a key's own); ``listening``: the client plays
        the audio as it streams (not a whole file, nor timestamps that come with the whole audio).

        A request that comes while the engines still load (the first one after start) waits for
        them, up to ``load_wait_seconds``, rather than fail; ``/readyz`` still says "loading".
        """
        limit = min(self.speech.max_audio_seconds, max_audio_seconds or self.speech.max_audio_seconds)
        profile = replace(self.speech, max_audio_seconds=limit, listening=listening)
        plan = partial(self.plan, request, profile, viewer)
        try:
            return await asyncio.to_thread(plan)
        except NotReady:
            if self.loaded.is_set() or not self.settings.load_wait_seconds:
                raise
        try:
            await asyncio.wait_for(self.loaded.wait(), self.settings.load_wait_seconds)
        except TimeoutError:
            raise NotReady(
                f"the engines are still loading after {self.settings.load_wait_seconds:g} s; retry shortly"
            ) from None
        return await asyncio.to_thread(plan)

    def _segments(
        self, request: SpeechRequest, text: str, engine: Engine, listening: bool
    ) -> Iterator[Segment]:
        """Segments of the text; a ``[pause:…]`` mark sets the pause after the segment it ends."""
        previous: Segment | None = None
        for part, pause in split_pauses(text):
            for segment in self._part_segments(request, part, engine, listening and previous is None):
                if previous is not None:
                    yield previous
                previous = segment
            if previous is not None and pause is not None:
                previous = replace(previous, pause_after=pause)
        if previous is not None:
            yield previous

    def _part_segments(
        self, request: SpeechRequest, text: str, engine: Engine, first: bool
    ) -> Iterator[Segment]:
        """Segments of text between pauses; ``first``: the plan's first, for a listener."""
        caps = engine.capabilities
        forced = language_code(request.language) if request.language else None
        limit = min(self.settings.segment_chars, caps.max_segment_chars)
        first_limit = min(self.settings.first_segment_chars, limit)
        for number, sentence in enumerate(sentences(text)):
            short = (
                first
                and number == 0
                and first_limit
                and request.seed is None
                and self._slow_to_start(engine, sentence)
            )
            pieces = lead(sentence, first_limit, limit) if short else fit(sentence, limit)
            for index, piece in enumerate(pieces):
                spoken = strip_marks(piece)
                if not is_speakable(spoken) and not has_marks(piece):
                    continue
                language = forced or (
                    detect_language(spoken) if is_speakable(spoken) else marked_language(piece)
                )
                if language not in caps.languages:
                    raise CapabilityMissing(
                        f"engine {engine.name!r} does not speak {language!r} "
                        f"(it speaks {', '.join(sorted(caps.languages))}); "
                        f"choose a model that does, such as {self.settings.default_engine!r}",
                        param="language" if forced else "input",
                    )
                yield Segment(piece, language, self._pause_after(piece, last=index == len(pieces) - 1))

    def _slow_to_start(self, engine: Engine, sentence: str) -> bool:
        """Whether a listener's first sentence starts with a short piece: only where no other
        listener's stream is on the engine (jobs' segments go after it) and the engine, at the pace
        it has measured, would take longer than ``first_audio_seconds`` on it whole. A short piece
        costs one more model run and the sentence's intonation, so an engine fast enough (hibari),
        one on servers (no pace here) or one that keeps sentences whole gets it whole; so does a
        stream that comes while other listeners' render: its first audio waits for their segments
        anyway, and the extra run would cost every stream throughput. A request with a seed gets
        it whole too (its caller checks): the same request and seed must give the same samples,
        whatever the pace was."""
        if engine.capabilities.whole_sentences or not isinstance(engine, Paced):
            return False
        pace = engine.seconds_per_char
        alone = engine.idle_for(SPEECH_PRIORITY)  # a listener's segments go at speech's priority
        return alone and pace is not None and pace * len(sentence) > self.settings.first_audio_seconds

    def _native_voices(
        self, segments: tuple[Segment, ...], wanted: str | None, engine: Engine, voice: str
    ) -> tuple[Segment, ...]:
        """Each segment in a language the plan's voice is not native to gets its language's voice,
        when the request left the voice to voxserve (see Selection.native_voice)."""
        info = engine.capabilities.voice(voice)
        native = set(info.languages) if info else set()
        chosen: dict[str, str | None] = {}
        result = []
        for segment in segments:
            if segment.language not in native:
                if segment.language not in chosen:
                    chosen[segment.language] = self.selection.native_voice(wanted, engine, segment.language)
                own = chosen[segment.language]
                segment = replace(segment, voice=own) if own and own != voice else segment
            result.append(segment)
        return tuple(result)

    def _pause_after(self, piece: str, last: bool) -> float:
        """A sentence's pause after its last piece, a clause's after a clause; none between words,
        where a sentence too long for one segment (or a stream's short first piece) was cut."""
        if last:
            return self.settings.sentence_pause
        return self.settings.clause_pause if CLAUSE_MARK.search(piece) else 0.0
