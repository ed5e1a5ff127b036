"""The one pipeline over the fake engine: planning checks, streaming, cancellation, failures."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.audio import decode
from voxserve.config import Settings
from voxserve.engines.fake import FakeEngine
from voxserve.errors import (
    CapabilityMissing,
    EmptyAudio,
    EngineError,
    InvalidRequest,
    NotReady,
    PayloadTooLarge,
    UnknownModel,
    UnknownVoice,
    UnsupportedValue,
)
from voxserve.metrics import Metrics
from voxserve.pipeline import Pipeline, SpeechRequest, Stats
from voxserve.text import TextNormalizer


@pytest.fixture
async def pipeline(tmp_path: Path) -> Pipeline:
    settings = Settings(data_dir=tmp_path, default_engine="fake", max_input_chars=300, segment_chars=40)
    engines = {
        "fake": FakeEngine(name="fake"),
        "english": FakeEngine(name="english", languages=frozenset({"en"})),
    }
    for engine in engines.values():
        await engine.load()
    normalizer = TextNormalizer()
    normalizer.load()
    return Pipeline(engines, normalizer, settings, ThreadPoolExecutor(2), Metrics())


def fake(pipeline: Pipeline, name: str = "fake") -> FakeEngine:
    engine = pipeline.engines[name]
    assert isinstance(engine, FakeEngine)
    return engine


@pytest.mark.parametrize(
    ("request_", "error", "param"),
    [
        (SpeechRequest(input="   "), InvalidRequest, "input"),
        (SpeechRequest(input="x" * 301), PayloadTooLarge, "input"),
        (SpeechRequest(input="…!?"), UnsupportedValue, "input"),
        (SpeechRequest(input="hi", model="nope"), UnknownModel, "model"),
        (SpeechRequest(input="hi", voice="nobody"), UnknownVoice, "voice"),
        (SpeechRequest(input="hi", sample_rate=12345), UnsupportedValue, "sample_rate"),
        (SpeechRequest(input="hi", language="klingon"), UnsupportedValue, "language"),
        (SpeechRequest(input="你好", model="english"), CapabilityMissing, "input"),
        (SpeechRequest(input="hi", model="english", language="zh"), CapabilityMissing, "language"),
    ],
)
async def test_plan_refuses_bad_requests_before_engine_time(
    pipeline: Pipeline, request_: SpeechRequest, error: type[Exception], param: str
) -> None:
    with pytest.raises(error) as caught:
        pipeline.plan(request_)
    assert getattr(caught.value, "param", None) == param
    assert not fake(pipeline).calls and not fake(pipeline, "english").calls


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"speed": 5.0}, "speed\n  Input should be less than or equal to 4"),
        ({"speed": float("nan")}, "speed\n  Input should be a finite number"),
        ({"pitch": -13.0}, "pitch\n  Input should be greater than or equal to -12"),
        ({"seed": -1}, "seed\n  Input should be greater than or equal to 0"),
        ({"response_format": "xyz"}, "response_format\n  Input should be 'mp3', 'opus'"),
        ({"emotion": "x" * 65}, "emotion\n  String should have at most 64 characters"),
        ({"cache": "sometimes"}, "cache\n  Input should be 'use', 'refresh' or 'off'"),
    ],
)
def test_a_request_out_of_range_cannot_be_made(fields: dict[str, object], message: str) -> None:
    """The request model holds the bounds every door shares: no plan ever sees such a request."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        SpeechRequest(input="hi", **fields)  # type: ignore[arg-type]


def test_a_stored_request_is_read_back_by_its_version() -> None:
    request = SpeechRequest(input="hi", voice="jm_kumo", speed=1.5, seed=7, cache="off")
    dumped = request.dump()
    assert dumped["version"] == 1 and "input" not in dumped
    assert SpeechRequest.load("hi", dumped) == request
    with pytest.raises(InvalidRequest, match="queued by a newer voxserve"):
        SpeechRequest.load("hi", {**dumped, "version": 2})


async def test_over_limit_message_names_the_limit_and_jobs(pipeline: Pipeline) -> None:
    with pytest.raises(PayloadTooLarge, match=r"301 characters; the limit .* is 300.*/v1/jobs"):
        pipeline.plan(SpeechRequest(input="x" * 301))


async def test_not_ready_engine_is_503(pipeline: Pipeline) -> None:
    await fake(pipeline).close()
    with pytest.raises(NotReady):
        pipeline.plan(SpeechRequest(input="hello"))


async def test_openai_names_map_onto_voices(pipeline: Pipeline) -> None:
    plan = pipeline.plan(SpeechRequest(input="hello", model="fake", voice="alloy"))
    assert plan.voice.id == "tone"


async def test_options_an_engine_cannot_honour_are_reported(pipeline: Pipeline) -> None:
    plan = pipeline.plan(SpeechRequest(input="hello", emotion="happy", instructions="whisper"))
    assert plan.ignored == ("emotion", "instructions")


async def test_segments_carry_language_and_fit_the_limit(pipeline: Pipeline) -> None:
    text = "Hello there, this sentence is long enough to be split at its clause. 你好，世界。"
    plan = pipeline.plan(SpeechRequest(input=text))
    assert [(s.text, s.language) for s in plan.segments] == [
        ("Hello there,", "en"),
        ("this sentence is long enough to be split", "en"),
        ("at its clause.", "en"),
        ("你好，世界。", "zh"),
    ]
    # a clause's pause after the clause; none where the limit cut between words
    assert [s.pause_after for s in plan.segments] == [0.1, 0.0, 0.25, 0.25]


@pytest.mark.parametrize(
    ("pace", "idle", "listening", "seed", "first"),
    [
        (0.05, True, True, None, "The morning train was"),  # 62 characters at 50 ms each: 3.1 s > 0.6 s
        (0.005, True, True, None, "The morning train was late again, so we walked to the office."),  # 0.31 s
        (None, True, True, None, "The morning train was late again, so we walked to the office."),  # no pace
        (0.05, True, False, None, "The morning train was late again, so we walked to the office."),  # a file
        (0.05, True, True, 7, "The morning train was late again, so we walked to the office."),  # seeded
        (0.05, False, True, None, "The morning train was late again, so we walked to the office."),  # busy
    ],
)
async def test_a_listeners_first_sentence_starts_short_only_where_it_pays(
    tmp_path: Path, pace: float | None, idle: bool, listening: bool, seed: int | None, first: str
) -> None:
    engines = {"fake": FakeEngine(name="fake", pace=pace, idle=idle)}
    await engines["fake"].load()
    normalizer = TextNormalizer()
    normalizer.load()
    settings = Settings(data_dir=tmp_path, default_engine="fake", first_segment_chars=24)
    pipeline = Pipeline(engines, normalizer, settings, ThreadPoolExecutor(1), Metrics())
    text = "The morning train was late again, so we walked to the office. Then it rained all day long."
    assert len(pipeline.plan(SpeechRequest(input=text)).segments) == 2, "a job's sentences stay whole"
    request = SpeechRequest(input=text, seed=seed)
    plan = pipeline.plan(request, replace(pipeline.planner.speech, listening=listening))
    segments = [(s.text, s.pause_after) for s in plan.segments]
    assert segments[0][0] == first
    assert segments[-1] == ("Then it rained all day long.", 0.25), "later sentences whole"
    if first == "The morning train was":
        assert segments[:2] == [
            ("The morning train was", 0.0),  # the first words, joined to the rest without a pause
            ("late again, so we walked to the office.", 0.25),
        ]


async def test_audio_streams_segment_by_segment(pipeline: Pipeline) -> None:
    plan = pipeline.plan(SpeechRequest(input="One two. Three four five. Six.", response_format="wav"))
    stats = Stats(chars=plan.chars)
    chunks = [chunk async for chunk in pipeline.encode(plan, stats)]
    assert len(chunks) >= 3
    decoded = decode(b"".join(chunks))
    words, pauses = 6 * 0.2, 3 * 0.25
    assert decoded.duration == pytest.approx(words + pauses, abs=0.05)
    assert stats.segments_done == 3 and stats.audio_seconds == pytest.approx(decoded.duration, abs=0.05)


async def test_speed_beyond_the_engine_range_uses_tempo(pipeline: Pipeline) -> None:
    plan = pipeline.plan(SpeechRequest(input="One two three four.", speed=4.0, response_format="wav"))
    assert (plan.readers[0].engine_speed, plan.readers[0].tempo) == (2.0, 2.0)
    audio = b"".join([c async for c in pipeline.encode(plan, Stats(chars=plan.chars))])
    assert decode(audio).duration == pytest.approx(4 * 0.2 / 4 + 0.25 / 4, abs=0.03)


async def test_a_consumer_that_stops_stops_the_remaining_segments(pipeline: Pipeline) -> None:
    text = " ".join(f"Sentence number {i}." for i in range(10))
    plan = pipeline.plan(SpeechRequest(input=text, response_format="pcm"))
    stream = pipeline.encode(plan, Stats(chars=plan.chars))
    await anext(stream)
    await stream.aclose()
    assert len(fake(pipeline).calls) <= 2


async def test_a_failed_segment_ends_the_stream_with_an_error(pipeline: Pipeline) -> None:
    fake(pipeline).fail_on = "boom"
    plan = pipeline.plan(SpeechRequest(input="Fine here. Then boom. Never reached."))
    with pytest.raises(EngineError, match="told to fail"):
        [chunk async for chunk in pipeline.encode(plan, Stats(chars=plan.chars))]
    assert [c.text for c in fake(pipeline).calls] == ["Fine here.", "Then boom."]


async def test_empty_engine_output_is_an_error_not_silence(pipeline: Pipeline) -> None:
    fake(pipeline).empty_on = "quiet"
    plan = pipeline.plan(SpeechRequest(input="Say something quiet."))
    with pytest.raises(EmptyAudio):
        [chunk async for chunk in pipeline.encode(plan, Stats(chars=plan.chars))]


async def routed_pipeline(tmp_path: Path, default: str) -> Pipeline:
    engines = {
        "english": FakeEngine(name="english", languages=frozenset({"en"})),
        "everything": FakeEngine(name="everything"),
        "emotional": FakeEngine(name="emotional", emotions=frozenset({"happy"})),
    }
    for engine in engines.values():
        await engine.load()
    normalizer = TextNormalizer()
    normalizer.load()
    settings = Settings(data_dir=tmp_path, default_engine=default)
    return Pipeline(engines, normalizer, settings, ThreadPoolExecutor(1), Metrics())


@pytest.mark.parametrize(
    ("request_", "engine"),
    [
        (SpeechRequest(input="Hello."), "english"),  # the default when it can
        (SpeechRequest(input="你好。Hello."), "everything"),  # it cannot speak Chinese
        (SpeechRequest(input="Hello.", language="zh"), "everything"),
        (SpeechRequest(input="Hello.", emotion="happy"), "emotional"),  # honours what the default ignores
        (SpeechRequest(input="Hello.", model="english", emotion="happy"), "english"),  # a named model wins
    ],
)
async def test_requests_naming_no_model_go_to_an_engine_that_can_serve_them(
    tmp_path: Path, request_: SpeechRequest, engine: str
) -> None:
    pipeline = await routed_pipeline(tmp_path, default="english")
    assert pipeline.plan(request_).engine.name == engine


async def test_no_engine_for_a_language(tmp_path: Path) -> None:
    pipeline = await routed_pipeline(tmp_path, default="english")
    del pipeline.engines["everything"], pipeline.engines["emotional"]
    with pytest.raises(CapabilityMissing, match="no engine here speaks zh") as caught:
        pipeline.plan(SpeechRequest(input="你好"))
    assert caught.value.param == "input"


async def test_an_emotion_the_engine_does_not_know_is_refused_naming_those_it_knows(tmp_path: Path) -> None:
    pipeline = await routed_pipeline(tmp_path, "english")
    with pytest.raises(
        UnsupportedValue, match=r"does not know the emotion 'gleeful'; choose one of happy"
    ) as caught:
        pipeline.plan(SpeechRequest(input="Hello.", model="emotional", emotion="gleeful"))
    assert caught.value.param == "emotion"
    # an engine with no emotions at all ignores one, and says so (X-Voxserve-Ignored)
    assert pipeline.plan(SpeechRequest(input="Hello.", model="english", emotion="gleeful")).ignored == (
        "emotion",
    )


async def test_a_job_planned_otherwise_by_its_worker_is_told_what_changed(tmp_path: Path) -> None:
    """A job keeps its plan's decisions; a worker whose settings cut the text otherwise (or pick
    another engine or rate) sees the disagreement, which fails the job instead of resuming it wrong."""
    engines = {"fake": FakeEngine(name="fake")}
    await engines["fake"].load()
    normalizer = TextNormalizer()
    normalizer.load()
    text = "The morning train was late again, so we walked to the office. Then it rained all day long."

    def pipeline(**settings: Any) -> Pipeline:
        chosen = Settings(data_dir=tmp_path, default_engine="fake", **settings)
        return Pipeline(engines, normalizer, chosen, ThreadPoolExecutor(1), Metrics())

    gateway = pipeline()
    decided = gateway.plan(SpeechRequest(input=text), gateway.planner.job).decisions()
    assert decided == {
        "engine": "fake",
        "sample_rate": 16000,
        "output_rate": 16000,
        "segments": 2,
        "voice": "tone",
    }
    same = pipeline()
    assert same.plan(SpeechRequest(input=text), same.planner.job).disagreement(decided) is None
    worker = pipeline(segment_chars=20)
    plan = worker.plan(SpeechRequest(input=text), worker.planner.job)
    assert plan.disagreement(decided) == f"segments 2 → {len(plan.segments)}"


async def test_a_default_engine_the_aliases_do_not_know_serves_requests_naming_no_model(
    tmp_path: Path,
) -> None:
    """A configured CosyVoice beside the embedded engines, its first table the default: requests
    with no model (or OpenAI's, and its voice names) go to it, not to the voices the aliases name."""
    engines = {
        "cosy": FakeEngine(name="cosy", voices=("中文女", "中文男")),
        "kokoro": FakeEngine(name="kokoro", voices=("zf_xiaobei", "af_heart")),
    }
    for engine in engines.values():
        await engine.load()
    normalizer = TextNormalizer()
    normalizer.load()
    settings = Settings(data_dir=tmp_path, default_engine="cosy")
    pipeline = Pipeline(engines, normalizer, settings, ThreadPoolExecutor(1), Metrics())
    for request in (SpeechRequest(input="你好。"), SpeechRequest(input="Hi.", model="tts-1", voice="alloy")):
        plan = pipeline.plan(request)
        assert (plan.engine.name, plan.voice.id) == ("cosy", "中文女")
    assert pipeline.plan(SpeechRequest(input="你好。", voice="zf_xiaobei")).engine.name == "kokoro"
