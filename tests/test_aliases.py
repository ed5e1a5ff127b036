"""Voice names that stand for engine voices (OpenAI's per language, Kokoro-FastAPI's by gender), and
Kokoro-FastAPI's request fields."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import SPEECH
from tests.support.audio import decode
from tests.support.voices import best
from voxserve.config import DEFAULT_VOICE_ALIASES, Settings
from voxserve.engines import kokoro
from voxserve.engines.fake import FakeEngine
from voxserve.engines.kokoro_voices import VOICE_NAMES
from voxserve.errors import UnknownModel, UnknownVoice
from voxserve.metrics import Metrics
from voxserve.pipeline import Pipeline, SpeechRequest, Stats
from voxserve.text import TextNormalizer
from voxserve.values import Capabilities

ENGLISH = "Tickets cost twelve dollars."
CHINESE = "这张票一共三十五块钱。"


async def pipeline_of(
    tmp_path: Path, engines: dict[str, FakeEngine] | None = None, **settings: Any
) -> Pipeline:
    """Two engines as the defaults were without Kokoro's voice set: one for three languages with the
    Japanese voices, one English-only with ``heart`` (or ``engines``, the first the default)."""
    engines = engines or {
        "multi": FakeEngine(name="multi", voices=("jf_alpha", "jf_gongitsune", "jm_kumo")),
        "english": FakeEngine(name="english", languages=frozenset({"en"}), voices=("heart",)),
    }
    for engine in engines.values():
        await engine.load()
    normalizer = TextNormalizer()
    normalizer.load()
    config = Settings(data_dir=tmp_path, default_engine=next(iter(engines)), **settings)
    return Pipeline(dict(engines), normalizer, config, ThreadPoolExecutor(1), Metrics())


@pytest.mark.parametrize(
    ("voice", "text", "fields", "engine", "chosen"),
    [
        ("alloy", ENGLISH, {}, "english", "heart"),  # the most intelligible English female voice
        ("alloy", CHINESE, {}, "multi", "jf_alpha"),
        ("NOVA", ENGLISH, {"model": "multi"}, "multi", "jf_gongitsune"),  # the next one this engine has
        ("echo", ENGLISH, {}, "multi", "jm_kumo"),
        ("onyx", CHINESE, {}, "multi", "jm_kumo"),
        ("alloy", "Hello", {"language": "zh"}, "multi", "jf_alpha"),  # the named language decides
        ("alloy", ENGLISH, {"model": "tts-1"}, "english", "heart"),  # OpenAI's models pin no engine
        ("shimmer", CHINESE, {"model": "gpt-4o-mini-tts"}, "multi", "jf_alpha"),
        ("ash", ENGLISH, {"model": "auto"}, "multi", "jm_kumo"),
        ("af_heart", ENGLISH, {}, "english", "heart"),  # Kokoro-FastAPI's names, by their gender
        ("bm_george", ENGLISH, {}, "multi", "jm_kumo"),
        ("zf_xiaobei", CHINESE, {}, "multi", "jf_alpha"),
        ("jf_gongitsune", ENGLISH, {}, "multi", "jf_gongitsune"),  # an engine's own voice is itself
    ],
)
async def test_a_name_picks_the_best_voice_for_the_language(
    tmp_path: Path, voice: str, text: str, fields: dict[str, Any], engine: str, chosen: str
) -> None:
    plan = (await pipeline_of(tmp_path)).plan(SpeechRequest(input=text, voice=voice, **fields))
    assert (plan.engine.name, plan.voice.id) == (engine, chosen)


async def test_a_configured_alias_adds_to_the_defaults(tmp_path: Path) -> None:
    pipeline = await pipeline_of(tmp_path, voice_aliases={"Alloy": "jm_kumo", "narrator": {"en": "heart"}})
    assert set(DEFAULT_VOICE_ALIASES) < set(pipeline.selection.settings.voice_aliases)
    assert pipeline.plan(SpeechRequest(input=ENGLISH, voice="alloy")).voice.id == "jm_kumo"
    assert pipeline.plan(SpeechRequest(input=ENGLISH, voice="nova")).voice.id == "heart"  # still there
    narrated = pipeline.plan(SpeechRequest(input=CHINESE, voice="narrator"))
    assert narrated.voice.id == "jf_alpha", "a language the alias does not list: default's voice for it"


async def test_an_unknown_model_lists_auto_among_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="available: auto, english, gpt-4o-mini-tts, multi, tts-1"):
        (await pipeline_of(tmp_path)).plan(SpeechRequest(input=ENGLISH, model="tts-2"))


async def test_a_name_of_no_known_shape_is_still_unknown(tmp_path: Path) -> None:
    with pytest.raises(UnknownVoice, match="'xx_heart' is not known"):
        (await pipeline_of(tmp_path)).plan(SpeechRequest(input=ENGLISH, voice="xx_heart"))


def test_kokoro_fastapi_fields(fake_client: TestClient, fake_engine: FakeEngine) -> None:
    """``stream: false`` answers with the whole file; ``lang_code`` is Kokoro's language letter."""
    body = {"input": "hello there", "voice": "af_heart", "response_format": "wav"}
    whole = fake_client.post(SPEECH, json={**body, "stream": False, "lang_code": "b"})
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-length"] == str(len(whole.content))
    assert whole.headers["content-disposition"] == 'attachment; filename="speech.wav"'
    assert decode(whole.content).duration > 0.3
    assert whole.headers["x-voxserve-voice"] == "tone", "the voice that spoke, not the name asked for"
    assert fake_engine.calls[-1].language == "en"
    streamed = fake_client.post(SPEECH, json={**body, "lang_code": "z"})
    assert "content-length" not in streamed.headers and fake_engine.calls[-1].language == "zh"


class NativeVoices(FakeEngine):
    """Kokoro's 54 voices as the engine offers them, each native to one language (a tone engine)."""

    @property
    def capabilities(self) -> Capabilities:
        return replace(kokoro.capabilities(self.name, VOICE_NAMES), sample_rate=self.sample_rate)


async def native_pipeline(tmp_path: Path, **settings: Any) -> Pipeline:
    """The defaults' shape: Kokoro with its voice set first, hibari's one English voice beside it."""
    hibari = FakeEngine(name="hibari", languages=frozenset({"en"}), voices=("heart",))
    return await pipeline_of(tmp_path, {"kokoro": NativeVoices(name="kokoro"), "hibari": hibari}, **settings)


@pytest.mark.parametrize(
    ("voice", "text", "fields", "expected"),
    [
        (None, ENGLISH, {}, ("kokoro", best("en"))),  # no voice: the best of the language's own
        (None, CHINESE, {}, ("kokoro", best("zh"))),
        (None, "नमस्ते, आप कैसे हैं?", {}, ("kokoro", best("hi"))),  # Devanagari is Hindi
        (None, "[h][ǎo]。", {}, ("kokoro", best("zh"))),  # pinyin marks alone are Mandarin
        (None, "Bonjour à tous.", {"language": "fr"}, ("kokoro", "ff_siwis")),  # before espeak-ng
        ("alloy", CHINESE, {}, ("kokoro", best("zh", "female"))),
        ("echo", ENGLISH, {}, ("kokoro", best("en", "male"))),
        ("alloy", "Buenos días.", {"language": "es"}, ("kokoro", "ef_dora")),
        ("echo", "Bonjour à tous.", {"language": "fr"}, ("kokoro", "ff_siwis")),  # no French man
        ("af_heart", ENGLISH, {}, ("kokoro", "af_heart")),  # Kokoro-FastAPI's names are the voices now
        ("zm_yunxi", ENGLISH, {}, ("kokoro", "zm_yunxi")),  # a named voice reads what it is given
        (None, ENGLISH, {"model": "hibari"}, ("hibari", "heart")),  # hibari by name
        ("heart", ENGLISH, {}, ("hibari", "heart")),
    ],
)
async def test_every_language_gets_its_best_measured_native_voice(
    tmp_path: Path, voice: str | None, text: str, fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    plan = (await native_pipeline(tmp_path)).plan(SpeechRequest(input=text, voice=voice, **fields))
    assert (plan.engine.name, plan.voice.id) == expected
    assert all(segment.voice is None for segment in plan.segments)


@pytest.mark.parametrize(
    ("voice", "main", "english"),
    [(None, best("zh"), best("en")), ("alloy", best("zh", "female"), best("en", "female"))],
)
async def test_a_passage_in_another_language_is_read_by_a_native_voice(
    tmp_path: Path, voice: str | None, main: str, english: str
) -> None:
    pipeline = await native_pipeline(tmp_path)
    plan = pipeline.plan(SpeechRequest(input="Good morning, everyone. 今天我们开会。", voice=voice))
    assert plan.voice.id == main
    assert [(s.language, s.voice) for s in plan.segments] == [("en", english), ("zh", None)]
    stats = Stats(chars=plan.chars)
    assert [chunk async for chunk in pipeline.pcm(plan, stats)]
    calls = pipeline.engines["kokoro"].calls  # type: ignore[attr-defined]
    assert [(call.language, call.voice) for call in calls] == [("en", english), ("zh", main)]


async def test_a_voice_the_client_names_reads_every_passage(tmp_path: Path) -> None:
    plan = (await native_pipeline(tmp_path)).plan(
        SpeechRequest(input="Good morning, everyone. 今天我们开会。", voice="zf_xiaobei")
    )
    assert plan.voice.id == "zf_xiaobei" and all(segment.voice is None for segment in plan.segments)


async def test_a_house_voice_reads_its_languages_and_leaves_the_others_native(tmp_path: Path) -> None:
    aliases = {"default": {"en": "bf_emma"}, "narrator": {"en": "bm_george"}}
    pipeline = await native_pipeline(tmp_path, voice_aliases=aliases)
    assert pipeline.plan(SpeechRequest(input=ENGLISH)).voice.id == "bf_emma"
    assert pipeline.plan(SpeechRequest(input=CHINESE)).voice.id == best("zh")
    french = SpeechRequest(input="Bonjour à tous.", voice="narrator", language="fr")
    assert pipeline.plan(french).voice.id == "ff_siwis"
