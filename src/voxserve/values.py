"""The value types every layer passes: audio samples, what an engine can do, a segment to speak.

They sit below everything (audio, voices, engines, routing, planning all use
them), so none of those packages has to import another to name what it hands
on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PCM = NDArray[np.float32]
"""Mono float32 samples in [-1, 1] at the engine's sample rate."""


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine can speak with."""

    id: str
    engine: str
    languages: tuple[str, ...]
    gender: str | None = None
    description: str = ""


def voices_named(engine: str, ids: Iterable[str], languages: Sequence[str]) -> tuple[VoiceInfo, ...]:
    """Voices known only by id (a remote server's speakers), each speaking all the engine's languages."""
    return tuple(VoiceInfo(id=voice, engine=engine, languages=tuple(languages)) for voice in ids)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; the pipeline checks requests against this."""

    languages: frozenset[str]
    voices: tuple[VoiceInfo, ...]
    sample_rate: int
    max_segment_chars: int = 200
    streaming: bool = False
    cloning: bool = False
    clone_needs_transcript: bool = False  # a cloned voice must say what its reference says (prompt_text)
    blends: bool = False  # mixes its own voices: "a(2)+b(1)"
    markup: bool = False  # reads pinyin [h][ǎo], ARPAbet [M][AY0] and [ipa:…] marks itself
    emotions: frozenset[str] = field(default_factory=frozenset)
    #: any description of an emotion or style goes through as it is ("开心中带点讽刺"), not only ``emotions``
    free_emotions: bool = False
    instructions: bool = False
    #: instructions with a cloned voice too (CosyVoice 1 takes them only with its preset speakers)
    instructions_with_clones: bool = True
    #: why instructions are refused outright (a 422 naming them), for a model that fails on them
    instructions_refused: str | None = None
    seeded: bool = False
    native_speed: tuple[float, float] = (1.0, 1.0)
    #: a server that splits its own text and keeps a sentence's prosody whole: a stream's first
    #: sentence is not cut short for it (a clause alone loses the sentence's intonation)
    whole_sentences: bool = False

    @property
    def default_voice(self) -> str:
        return self.voices[0].id

    def voice(self, voice_id: str) -> VoiceInfo | None:
        return next((v for v in self.voices if v.id == voice_id), None)


@dataclass(frozen=True)
class Reference:
    """A voice to clone: checked, normalized audio (24 kHz mono s16 WAV) and what it says."""

    path: Path
    digest: str  # of the normalized audio; part of every cache key
    transcript: str | None = None


@dataclass(frozen=True)
class SegmentRequest:
    """One piece of text for an engine, already normalized and within its limit."""

    text: str
    language: str
    voice: str
    speed: float = 1.0
    seed: int | None = None
    emotion: str | None = None
    instructions: str | None = None
    reference: Reference | None = None
    #: A blend's parts and weights (summing to one) when ``voice`` is a formula, as selection
    #: parsed it: an engine that blends mixes these and never reads the formula itself.
    mix: tuple[tuple[str, float], ...] = ()
    #: Where the segment waits for an engine slot: higher priority first (speech before jobs),
    #: then the request that started first (loop time), so a stream under way is not overtaken.
    priority: int = 0
    submitted: float = 0.0


@dataclass(frozen=True)
class WordTime:
    """When one word of a segment is spoken (seconds from the start of the segment's audio)."""

    word: str
    start: float
    end: float

    def shifted(self, by: float, scale: float = 1.0) -> WordTime:
        """The same word ``by`` seconds later, its times first scaled (a tempo change)."""
        return WordTime(self.word, self.start * scale + by, self.end * scale + by)

    def to_dict(self) -> dict[str, object]:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3)}


def from_s16(samples: NDArray[np.int16]) -> PCM:
    """Signed 16-bit samples as float32 in [-1, 1)."""
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def from_s16le(data: bytes) -> PCM:
    """Little-endian signed 16-bit bytes (``pcm`` output, a job's PCM file) as float32."""
    return from_s16(np.frombuffer(data, "<i2"))
