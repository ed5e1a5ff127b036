"""Multi-voice texts: SSML <voice> and scripts, read by their own voices on one or several engines."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.api import SPEECH, assert_error, ready_client, submit, wait_for
from tests.support.audio import decode
from tests.support.signals import GOOD
from voxserve import captions
from voxserve.config import Settings
from voxserve.engines.fake import FakeEngine
from voxserve.errors import InvalidRequest, UnknownModel, UnknownVoice
from voxserve.metrics import Metrics
from voxserve.pipeline import Pipeline, SpeechRequest, Stats
from voxserve.text import TextNormalizer
from voxserve.text.markup import Voicing
from voxserve.text.script import Passage, passages

SSML = (
    '<speak xmlns:mstts="http://www.w3.org/2001/mstts">'
    '<voice name="narrator">It was late.</voice>'
    '<voice name="Alice"><mstts:express-as style="happy">Hello there!</mstts:express-as></voice>'
    '<break time="300ms"/>'
    '<voice name="Bob"><prosody rate="+50%">Hi Alice.</prosody></voice>'
    "</speak>"
)


def test_ssml_voices_are_passages_with_their_emotion_and_rate() -> None:
    assert passages(SSML) == [
        Passage("It was late.", Voicing("narrator")),
        Passage("Hello there! [pause:0.3s]", Voicing("Alice", "happy")),
        Passage("Hi Alice.", Voicing("Bob", None, 1.5)),
    ]


def test_a_script_names_its_speakers_from_the_table() -> None:
    script = (
        "The door opened.\nAlice: Who is there?\nit is late.\n\nBob：是我。\nNote: not a speaker\n\nThe end."
    )
    assert passages(script, {"alice", "Bob"}) == [
        Passage("The door opened."),
        Passage("Who is there?\nit is late.", Voicing("Alice")),
        Passage("是我。\nNote: not a speaker", Voicing("Bob")),
        Passage("The end."),
    ]


def test_without_a_table_a_colon_is_only_text() -> None:
    assert passages("Alice: hello") == [Passage("Alice: hello")]


@pytest.mark.parametrize(
    ("ssml", "words"),
    [
        ('<speak><voice name="">x</voice></speak>', "needs a name"),
        ('<speak><prosody rate="warp">x</prosody></speak>', "prosody rate 'warp'"),
        ('<speak><prosody rate="9">x</prosody></speak>', "outside 0.25 to 4"),
    ],
)
def test_bad_voice_markup_is_refused_saying_why(ssml: str, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        passages(ssml)


@pytest.fixture
async def pipeline(tmp_path: Path) -> Pipeline:
    settings = Settings(data_dir=tmp_path, default_engine="low", segment_chars=80)
    engines = {
        "low": FakeEngine(name="low", sample_rate=16000, voices=("ann", "ben")),
        "high": FakeEngine(name="high", sample_rate=24000, voices=("cat",), emotions=frozenset({"happy"})),
    }
    for engine in engines.values():
        await engine.load()
    normalizer = TextNormalizer()
    normalizer.load()
    return Pipeline(engines, normalizer, settings, ThreadPoolExecutor(2), Metrics())


SCRIPT = "Narrator line one.\nAlice: Hello there friend.\nBob: Hi.\n\nAnd so it ended."
CAST = {"Alice": {"voice": "cat", "emotion": "happy"}, "Bob": {"voice": "ben", "speed": 2.0}}


async def test_a_script_is_read_by_each_speakers_voice_on_its_engine(pipeline: Pipeline) -> None:
    request = SpeechRequest(input=SCRIPT, voice="ann", voices=CAST, response_format="wav")
    plan = pipeline.plan(request)
    assert [(r.engine.name, r.voice.id, r.speaker, r.emotion, r.speed) for r in plan.readers] == [
        ("low", "ann", None, None, 1.0),
        ("high", "cat", "Alice", "happy", 1.0),
        ("low", "ben", "Bob", None, 2.0),
    ]
    assert [s.reader for s in plan.segments] == [0, 1, 2, 0]
    assert plan.rate == 24000 and plan.output_rate == 24000
    assert plan.decisions()["engine"] == "low,high" and plan.decisions()["voice"] == "ann,cat,ben"
    stats = Stats(chars=plan.chars)
    audio = decode(b"".join([chunk async for chunk in pipeline.encode(plan, stats)]))
    # words: 3 + 3 + 4 at 0.2 s each and 1 at half that; four sentence pauses of 0.25 s, Bob's at 2x
    expected = 10 * 0.2 + 0.1 + 3 * 0.25 + 0.125
    assert audio.sample_rate == 24000
    assert audio.duration == pytest.approx(expected, abs=0.05)
    assert [t.speaker for t in stats.timeline] == [None, "Alice", "Bob", None]
    low, high = pipeline.engines["low"], pipeline.engines["high"]
    assert isinstance(low, FakeEngine) and isinstance(high, FakeEngine)
    assert [c.voice for c in high.calls] == ["cat"] and high.calls[0].emotion == "happy"
    assert [c.voice for c in low.calls] == ["ann", "ben", "ann"]


async def test_voices_are_levelled_alike_at_the_joins(pipeline: Pipeline) -> None:
    low = pipeline.engines["low"]
    assert isinstance(low, FakeEngine)
    request = SpeechRequest(input=SCRIPT, voice="ann", voices=CAST, response_format="pcm")
    plan = pipeline.plan(request)
    stats = Stats(chars=plan.chars)
    pcm = [chunk async for _, chunk in pipeline.segment_audio(plan, stats)]
    peaks = [float(np.abs(chunk).max()) for chunk in pcm]
    assert max(peaks) / min(peaks) < 1.5, peaks


async def test_ssml_voices_on_engines_and_captions_say_who_speaks(pipeline: Pipeline) -> None:
    ssml = '<speak><voice name="ann">One two.</voice><voice name="Bob">Three four.</voice></speak>'
    plan = pipeline.plan(SpeechRequest(input=ssml, voices={"Bob": "cat"}, response_format="wav"))
    assert [(r.engine.name, r.voice.id) for r in plan.readers] == [("low", "ann"), ("high", "cat")]
    stats = Stats(chars=plan.chars)
    async for _ in pipeline.encode(plan, stats):
        pass
    timeline = [t.to_dict() for t in stats.timeline]
    assert "speaker" in timeline[1] and timeline[1]["speaker"] == "Bob"
    assert "<v ann>One two." in captions.vtt(timeline)
    assert "Bob: Three four." in captions.srt(timeline)


async def test_an_unknown_speaker_voice_names_the_speaker_and_the_table(pipeline: Pipeline) -> None:
    with pytest.raises(UnknownVoice, match="speaker 'Alice': voice 'nobody'") as caught:
        pipeline.plan(SpeechRequest(input="Alice: hi", voices={"Alice": "nobody"}))
    assert caught.value.param == "voices"
    with pytest.raises(UnknownModel, match="speaker 'Alice'") as model:
        pipeline.plan(SpeechRequest(input="Alice: hi", voices={"Alice": {"voice": "ann", "model": "x"}}))
    assert model.value.param == "voices"
    with pytest.raises(UnknownVoice, match="speaker 'Zed'") as ssml:
        pipeline.plan(SpeechRequest(input='<speak><voice name="Zed">hi</voice></speak>'))
    assert ssml.value.param == "input"


async def test_a_cast_too_large_is_refused(pipeline: Pipeline) -> None:
    rates = "".join(f'<prosody rate="{1 + n / 100:.2f}">word {n}.</prosody>' for n in range(40))
    with pytest.raises(InvalidRequest, match="more than 32 voices"):
        pipeline.plan(SpeechRequest(input=f"<speak>{rates}</speak>"))


def test_the_voices_table_is_bounded() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="voices"):
        SpeechRequest(input="x", voices={f"s{n}": "ann" for n in range(33)})
    with pytest.raises(ValidationError, match="voices"):
        SpeechRequest(input="x", voices={"a" * 65: "ann"})


@pytest.fixture
def cast_client(tmp_path: Path) -> Iterator[TestClient]:
    """The real app over two fake engines of different rates and voices."""
    engines = {
        "low": FakeEngine(name="low", sample_rate=16000, voices=("ann", "ben"), cloning=True),
        "high": FakeEngine(name="high", sample_rate=24000, voices=("cat",)),
    }
    settings = Settings(data_dir=tmp_path, default_engine="low", jobs={"lease_seconds": 5})
    with ready_client(settings, engines, raise_server_exceptions=False) as client:
        yield client


def test_speech_with_voices_across_engines(cast_client: TestClient) -> None:
    body = {"input": SCRIPT, "voice": "ann", "voices": {"Alice": "cat", "Bob": "ben"}, "timestamps": True}
    response = cast_client.post(SPEECH, json={**body, "response_format": "wav"})
    assert response.status_code == 200, response.text
    answer = response.json()
    audio = decode(base64.b64decode(answer["audio"]))
    assert audio.sample_rate == 24000 and audio.duration == pytest.approx(11 * 0.2 + 4 * 0.25, abs=0.06)
    assert [s.get("speaker") for s in answer["segments"]] == [None, "Alice", "Bob", None]
    streamed = cast_client.post(SPEECH, json={**body, "timestamps": False, "response_format": "mp3"})
    assert streamed.headers["x-voxserve-engine"] == "low,high"
    assert streamed.headers["x-voxserve-voice"] == "ann,cat,ben"


def test_a_job_with_a_script_writes_who_speaks_in_its_captions(cast_client: TestClient) -> None:
    job = submit(cast_client, input=SCRIPT, voice="ann", voices={"Alice": {"voice": "cat"}, "Bob": "ben"})
    assert job["voices"] == {"Alice": {"voice": "cat"}, "Bob": {"voice": "ben"}}
    wait_for(cast_client, job["id"], "succeeded")
    vtt = cast_client.get(f"/v1/jobs/{job['id']}/captions", params={"format": "vtt"}).text
    assert "<v Alice>Hello there friend." in vtt and "<v Bob>Hi." in vtt
    assert "\nNarrator line one.\n" in vtt
    audio = decode(cast_client.get(f"/v1/jobs/{job['id']}/audio").content)
    assert audio.sample_rate == 24000 and audio.duration == pytest.approx(11 * 0.2 + 4 * 0.25, abs=0.06)


def test_a_speakers_unknown_voice_is_a_404_naming_it(cast_client: TestClient) -> None:
    response = cast_client.post(SPEECH, json={"input": "Alice: hi", "voices": {"Alice": "nobody"}})
    assert_error(response, 404, "unknown_voice", "voices", "speaker 'Alice': voice 'nobody' is not known")
    oversized = cast_client.post(SPEECH, json={"input": "x", "voices": {"a": "x" * 300}})
    assert oversized.status_code == 400 and oversized.json()["error"]["param"].startswith("voices")


async def test_a_mixed_language_heading_is_one_caption_and_long_sentences_cut_at_clauses(
    pipeline: Pipeline,
) -> None:
    text = (
        "Chapter Two: 第二章 灯塔\n\nThe keeper climbed the long stairs of the old lighthouse, slowly, "
        "which had been dark for forty years; "
        "他点亮了灯，风越来越大，海浪一次又一次拍打着黑色的礁石和长长的堤岸。"
    )
    plan = pipeline.plan(SpeechRequest(input=text, response_format="wav"), pipeline.planner.job)
    texts = [segment.text for segment in plan.segments]
    assert texts[0] == "Chapter Two: 第二章 灯塔", "the heading is not cut between its languages"
    assert all(piece.rstrip()[-1] in ",;，。.:" for piece in texts[1:]), texts


def test_bad_casts_are_refused_naming_the_field(cast_client: TestClient) -> None:
    role = cast_client.post(SPEECH, json={"input": "A: hi", "voices": {"A": {"voice": "ann", "speed": 9}}})
    assert_error(role, 400, "invalid_request", "voices.A.speed", "less than or equal to 4")
    twins = cast_client.post(SPEECH, json={"input": "A: hi", "voices": {"A": "ann", "a": "ben"}})
    assert_error(twins, 400, "invalid_request", "voices", "differ only in case")


def test_a_job_whose_library_voices_would_overfill_its_table_is_refused(cast_client: TestClient) -> None:
    files = {"audio": ("me.wav", GOOD, "audio/wav")}
    assert cast_client.post("/v1/voices", data={"name": "narrator"}, files=files).status_code == 201
    table = {f"S{n}": "ann" for n in range(32)}
    ssml = '<speak><voice name="narrator">Hi there.</voice> And me.</speak>'
    answer = cast_client.post("/v1/jobs", json={"input": ssml, "voices": table})
    assert_error(answer, 400, "invalid_request", "voices", "the most is 32")
    assert cast_client.get("/v1/jobs").json()["data"] == [], "nothing queued"
    fits = cast_client.post("/v1/jobs", json={"input": ssml, "voices": {"S0": "ann"}})
    assert fits.status_code == 202 and fits.json()["voices"]["narrator"]["voice"].startswith("v_")


def test_a_speakers_name_cannot_break_a_caption() -> None:
    segment = {"text": "hi", "start": 0.0, "end": 1.0, "speaker": "Eve\n\n00:00:00.000 --> 00:09:00.000\nX"}
    vtt, srt = captions.vtt([segment]), captions.srt([segment])
    assert "<v Eve 00:00:00.000 → 00:09:00.000 X>hi" in vtt and vtt.count("-->") == 1
    assert "Eve 00:00:00.000 → 00:09:00.000 X: hi" in srt and srt.count("-->") == 1
