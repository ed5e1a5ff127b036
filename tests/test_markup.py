"""Pronunciation and pause markup: parsing, SSML, segmentation, and what each engine hears."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from misaki.zh import ZHG2P

from tests.support.api import assert_error
from tests.support.audio import assert_speech_like, decode
from voxserve.engines.fake import FakeEngine
from voxserve.engines.kokoro import KokoroEngine
from voxserve.errors import InvalidRequest
from voxserve.text import TextNormalizer, sentences
from voxserve.text.markup import Mark, arpabet_to_ipa, marks, split_pauses, ssml_passages, strip_marks


def expand_ssml(text: str) -> str:
    """SSML's text with inline marks, its passages (voices) read as one."""
    return " ".join(piece for _, piece in ssml_passages(text))


def test_inline_marks() -> None:
    assert list(marks("他很[h][ào]奇")) == [Mark("text", "他很"), Mark("pinyin", "hao4"), Mark("text", "奇")]
    assert list(marks("[zh][ōng][g][uo2]")) == [Mark("pinyin", "zhong1"), Mark("pinyin", "guo2")]
    assert list(marks("a [M][AY0][N][UW1][T] b")) == [
        Mark("text", "a "),
        Mark("arpabet", "M AY0 N UW1 T"),
        Mark("text", " b"),
    ]
    assert list(marks("[ipa:təˈmɑːtoʊ]")) == [Mark("ipa", "təˈmɑːtoʊ")]
    ordinary = [Mark("text", "a "), Mark("text", "[sic]"), Mark("text", " note "), Mark("text", "[x]")]
    assert list(marks("a [sic] note [x]")) == ordinary, "bracketed words that are not marks stay text"
    assert arpabet_to_ipa("M AY0 N UW1 T") == "maɪnˈut" and arpabet_to_ipa("AH0 B ER1") == "əbˈɜɹ"
    assert strip_marks("你[h][ǎo] [pause:1s] yes") == "你   yes"


def test_pauses() -> None:
    assert list(split_pauses("a[pause:0.5s]b [pause:250ms]")) == [("a", 0.5), ("b ", 0.25), ("", None)]
    with pytest.raises(InvalidRequest, match="the longest is 10 s"):
        list(split_pauses("a [pause:11s] b"))


@pytest.mark.parametrize(
    ("ssml", "text"),
    [
        ('<speak>Hi<break time="500ms"/>there</speak>', "Hi [pause:0.5s] there"),
        ('Wait <break strength="strong"/> now', "Wait [pause:0.7s] now"),
        ('<speak><sub alias="World Wide Web">WWW</sub></speak>', "World Wide Web"),
        ('<say-as interpret-as="characters">NASA</say-as>', "N A S A"),
        ('call <say-as interpret-as="digits">110</say-as>', "call 1 1 0"),
        ('<phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme>', "[ipa:təˈmɑːtoʊ]"),
        ('<phoneme alphabet="x-arpabet" ph="R EH1 D">read</phoneme>', "[R][EH1][D]"),
        ('他很<phoneme alphabet="pinyin" ph="hao4">好</phoneme>奇', "他很[hao4]奇"),
        ('<speak><prosody rate="slow">slowly</prosody> said</speak>', "slowly said"),
        ("no markup at all, 3 < 4", "no markup at all, 3 < 4"),
    ],
)
def test_ssml_subset(ssml: str, text: str) -> None:
    assert expand_ssml(ssml) == text


@pytest.mark.parametrize(
    ("ssml", "words"),
    [
        ("<speak>Hi <break time='500ms'></speak>", "not well-formed SSML"),
        ("<speak><audio src='x.wav'/></speak>", "<audio> is not supported"),
        ("<speak><break time='soon'/></speak>", "is not like '500ms'"),
        ("<speak><break time='20s'/></speak>", "the longest is 10 s"),
        ("<speak><phoneme alphabet='sampa' ph='x'>a</phoneme></speak>", "not ipa, x-arpabet or pinyin"),
    ],
)
def test_bad_ssml_is_a_clear_400(fake_client: TestClient, ssml: str, words: str) -> None:
    response = fake_client.post("/v1/audio/speech", json={"input": ssml})
    assert_error(response, 400, "invalid_request", "input", words)


def test_segmentation_and_normalization_never_touch_marks() -> None:
    text = "First [M][AY0][N][UW1][T] one. 第二句[h][ǎo]吗？Third [pause:1.5s] four."
    assert all(part.count("[") == part.count("]") for part in sentences(text))
    normalizer = TextNormalizer()
    normalizer.load()
    assert normalizer.normalize("I have 3 [AH0][P][AH0][L][Z].", "en") == "I have three [AH0][P][AH0][L][Z]."


def test_marks_reach_engines_that_read_them_and_are_stripped_for_others(
    fake_client: TestClient, fake_engine: FakeEngine
) -> None:
    body = {"input": "one [R][EH1][D] two [pause:1.5s] three.", "response_format": "wav", "seed": 1}
    marked = fake_client.post("/v1/audio/speech", json=body)
    plain = fake_client.post("/v1/audio/speech", json={**body, "input": "one two three."})
    assert marked.headers["x-voxserve-ignored"] == "markup"
    assert [call.text for call in fake_engine.calls[:2]] == ["one   two", "three."]
    assert decode(marked.content).duration == pytest.approx(decode(plain.content).duration + 1.5, abs=0.15)
    ssml = fake_client.post(
        "/v1/audio/speech", json={**body, "input": "<speak>one<break time='1s'/>two</speak>"}
    )
    assert decode(ssml.content).duration == pytest.approx(0.2 + 1.0 + 0.2 + 0.25, abs=0.1)


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory: pytest.TempPathFactory) -> KokoroEngine:
    models = tmp_path_factory.mktemp("models")
    engine = KokoroEngine("kokoro", ThreadPoolExecutor(1), models, threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # in a dependency's G2P data loading
        engine._load()
    return engine


def test_the_embedded_engine_hears_the_override(kokoro: KokoroEngine) -> None:
    assert "xa↗ŋ" in kokoro._phonemize("我们去银行。", "zh")
    marked = kokoro._phonemize("我们去银[x][íng]。", "zh")
    assert "ɕi↗ŋ" in marked and "xa↗ŋ" not in marked
    assert "ɹˈiːd" in kokoro._phonemize("I read it.", "en")
    assert "ɹˈɛd" in kokoro._phonemize("I [R][EH1][D] it.", "en")
    assert "təˈmɑːtoʊ" in kokoro._phonemize("a [ipa:təˈmɑːtoʊ] please", "en")


@pytest.mark.parametrize(
    ("marked", "written"),
    [
        ("[h][ào]奇", "好奇"),  # the mark starts its word
        ("他很[h][ào]奇。", "他很好奇。"),
        ("我们去银[h][áng]。", "我们去银行。"),  # it ends its word
        ("音[y][uè]", "音乐"),
        ("[zh][ǎng]大", "长大"),
        ("你好，[h][ào]奇", "你好，好奇"),
        ("[ch][óng][q][ìng]", "重庆"),  # marks one after another are one word
    ],
)
def test_a_pinyin_mark_is_the_syllable_misaki_reads_in_the_word(
    kokoro: KokoroEngine, marked: str, written: str
) -> None:
    """The phonemes of a marked syllable are exactly misaki's for the written word, tone included."""
    assert kokoro._phonemize(marked, "zh") == ZHG2P()(written)[0]


def test_english_words_inside_chinese_are_read_as_english(kokoro: KokoroEngine) -> None:
    phonemes = kokoro._phonemize("我们用 SQL 查询数据。", "zh")
    assert "ˌɛskjˌuːˈɛl" in phonemes and "SQL" not in phonemes


def test_marks_change_the_embedded_engines_audio(client: httpx.Client) -> None:
    def speak(text: str) -> bytes:
        body = {"input": text, "model": "kokoro", "response_format": "wav", "voice": "zf_xiaobei"}
        response = client.post("/v1/audio/speech", json=body, headers={"Cache-Control": "no-store"})
        assert response.status_code == 200, response.text
        assert "x-voxserve-ignored" not in response.headers
        return response.content

    assert speak("我们去银[x][íng]。") != speak("我们去银行。")
    marked = speak("I [R][EH1][D] it.")
    assert marked != speak("I read it.") and marked == speak("I [R][EH1][D] it.")
    assert_speech_like(decode(marked))


_ssml_piece = st.sampled_from(
    [
        "<speak>",
        "</speak>",
        "<prosody>",
        "</prosody>",
        '<break time="1s"/>',
        "<s>",
        "</s>",
        "hi ",
        "&amp;",
        "<sub alias='x'>",
        "</sub>",
        "<say-as interpret-as='digits'>",
        "</say-as>",
        "<p>",
        "</p>",
        "<",
        "&",
        "1",
    ]
)


@settings(max_examples=300, deadline=None)
@given(text=st.lists(_ssml_piece, max_size=80).map("".join))
def test_ssml_either_expands_or_is_a_400(text: str) -> None:
    try:
        expanded = expand_ssml(text)
    except InvalidRequest as exc:
        assert exc.param == "input"
    else:
        assert "<speak" not in expanded


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("[]:aeiouüǖǎbqxhngs0123456789 pause.ms")), max_size=120))
def test_marks_either_parse_or_are_a_400(text: str) -> None:
    try:
        list(marks(text))
        strip_marks(text)
        list(split_pauses(text))
    except InvalidRequest as exc:
        assert exc.param == "input"


def test_ssml_deeper_than_the_limit_is_refused_without_recursion() -> None:
    deep = "<speak>" + "<prosody>" * 100_000 + "hi" + "</prosody>" * 100_000 + "</speak>"
    with pytest.raises(InvalidRequest, match="nested more than 32"):
        expand_ssml(deep)
