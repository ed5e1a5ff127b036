"""Every language by a native voice, through the running server: what Whisper hears.

Mandarin is heard by Whisper base (multilingual, from PyPI), English by tiny.en. The sentences
here are in neither of the benchmark's sets, so the measured defaults are checked on new text.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from faster_whisper import WhisperModel
from harness.listening import Listener

from tests.support.api import SPEECH
from tests.support.audio import assert_speech_like, decode
from tests.support.voices import best
from voxserve.engines.kokoro_voices import VOICE_NAMES
from voxserve.kokoro_names import language_of
from voxserve.text import TextNormalizer

#: Twelve short sentences: one misheard character is up to 0.18 of a sentence's rate, so the mean
#: over fewer says more about Whisper's luck than about the voice.
MANDARIN = [
    "邮局每天早上八点半开门。",
    "这辆自行车花了我六百块钱。",
    "周末我们一起去爬山吧。",
    "小王的女儿今年上小学三年级。",
    "请在五月十号以前交房租。",
    "这家餐厅的饺子非常好吃。",
    "我每天坐地铁去上班。",
    "明天下午可能会下雨。",
    "图书馆周日不开门。",
    "他把钥匙忘在办公室了。",
    "这件衣服有点儿大。",
    "我们下个月去北京看朋友。",
]
#: (written plainly, with a polyphone marked, what must be heard)
MARKED = [
    ("我们明天去银行。", "我们明天去银[h][áng]。", "银行"),
    ("他还没还钱。", "他还没[h][uán]钱。", "还钱"),  # misaki reads the second 还 hái
]


@pytest.fixture(scope="module")
def listener(whisper_base: WhisperModel) -> Listener:
    """Whisper base and voxserve's normalizer, as ``bench voices-quality`` listens."""
    normalizer = TextNormalizer()
    normalizer.load()
    return Listener(whisper_base, normalizer)


def speak(client: httpx.Client, text: str, **fields: object) -> httpx.Response:
    response = client.post(SPEECH, json={"input": text, "response_format": "wav", **fields})
    assert response.status_code == 200, response.text
    return response


def test_every_kokoro_voice_is_listed_with_its_language_and_gender(client: httpx.Client) -> None:
    voices = {v["id"]: v for v in client.get("/v1/audio/voices").json()["voices"] if v["engine"] == "kokoro"}
    assert len(voices) == 54
    assert (voices["zf_xiaobei"]["languages"], voices["zf_xiaobei"]["gender"]) == (["zh"], "female")
    assert (voices["bm_george"]["languages"], voices["bm_george"]["description"]) == (
        ["en"],
        "British English",
    )
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert {"en", "zh", "ja", "es", "fr", "it", "pt", "hi"} <= set(models["kokoro"]["languages"])


def test_mandarin_with_no_voice_and_no_language_is_a_native_speaker(
    client: httpx.Client, listener: Listener
) -> None:
    rates = []
    for text in MANDARIN:
        response = speak(client, text)
        spoke = (response.headers["x-voxserve-engine"], response.headers["x-voxserve-voice"])
        assert spoke == ("kokoro", best("zh"))
        rates.append(listener.error_rate(response.content, text, "zh"))
    assert np.mean(rates) <= 0.08, rates


@pytest.mark.parametrize(
    ("voice", "expected"), [("nova", best("en", "female")), ("onyx", best("en", "male"))]
)
def test_english_with_an_openai_name_is_a_native_speaker(
    client: httpx.Client, voice: str, expected: str
) -> None:
    """What Whisper hears from them: bench voices-quality's held-out table; no voice: test_intelligibility."""
    response = speak(client, "Good morning.", voice=voice)
    assert response.headers["x-voxserve-voice"] == expected
    assert_speech_like(decode(response.content), min_seconds=0.5)


@pytest.mark.parametrize(("plain", "marked", "word"), MARKED)
@pytest.mark.parametrize("voice", [best("zh")])
def test_a_marked_polyphone_is_heard_as_intended(
    client: httpx.Client, listener: Listener, plain: str, marked: str, word: str, voice: str
) -> None:
    """And never worse than the sentence written plainly (by Whisper base, which mishears 好奇 from
    every female voice whether marked or not: a mark that spells misaki's own reading is checked
    below, on every voice, by the samples)."""
    plain_audio, marked_audio = (speak(client, text, voice=voice).content for text in (plain, marked))
    heard_plain, heard_marked = listener.heard(plain_audio, "zh"), listener.heard(marked_audio, "zh")
    assert word in heard_marked, heard_marked
    rate_plain = listener.error_rate(plain_audio, plain, "zh", heard=heard_plain)
    assert listener.error_rate(marked_audio, plain, "zh", heard=heard_marked) <= rate_plain, (
        heard_plain,
        heard_marked,
    )


@pytest.mark.parametrize(
    ("language", "text", "voice"),
    [
        ("fr", "Le train part à huit heures.", "ff_siwis"),
        ("es", "El museo cierra a las seis.", best("es")),
        ("hi", "बैठक कल सुबह होगी।", best("hi")),
    ],
)
def test_other_languages_go_to_kokoros_native_voices(
    client: httpx.Client, language: str, text: str, voice: str
) -> None:
    fields = {"language": language} if language != "hi" else {}  # Hindi is known by its script
    response = speak(client, text, **fields)
    assert (response.headers["x-voxserve-engine"], response.headers["x-voxserve-voice"]) == ("kokoro", voice)
    audio = decode(response.content)
    assert audio.sample_rate == 24000
    assert_speech_like(audio, min_seconds=0.8)


@pytest.mark.parametrize("voice", [voice for voice in VOICE_NAMES if language_of(voice) == "zh"])
def test_a_mark_that_spells_misakis_reading_changes_nothing_in_any_mandarin_voice(
    client: httpx.Client, voice: str
) -> None:
    fresh = {"Cache-Control": "no-store"}
    plain, marked = (
        client.post(SPEECH, json={"input": text, "voice": voice, "response_format": "pcm"}, headers=fresh)
        for text in ("很好奇。", "很[h][ào]奇。")
    )
    assert plain.status_code == marked.status_code == 200
    assert plain.content == marked.content and len(plain.content) > 24000
