"""hibari: a 7.9 MB English-only model distilled from Kokoro, about 100x real time.

Only the ``heart`` voice ships inside the package; hibari's other voices
download from a model hub on first use, so voxserve never offers them. Its
output is quiet; the audio pipeline normalizes level for every engine.
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np

from voxserve.config import EngineSettings
from voxserve.engines.base import PCM, Capabilities, SegmentRequest, VoiceInfo
from voxserve.engines.embedded import EmbeddedEngine, Waiting
from voxserve.engines.kind import BuildContext, EngineKind, NoOptions, waiting_of

SAMPLE_RATE = 24000
BUNDLED_VOICE = "heart"
DEFAULT_SEED = 0


class HibariEngine(EmbeddedEngine):
    """hibari through its own Python API; seeded noise makes output reproducible."""

    def __init__(
        self,
        name: str,
        executor: Executor,
        threads: int = 1,
        max_concurrency: int = 2,
        waiting: Waiting = Waiting(),
    ) -> None:
        capabilities = Capabilities(
            languages=frozenset({"en"}),
            voices=(VoiceInfo(id=BUNDLED_VOICE, engine=name, languages=("en",), gender="female"),),
            sample_rate=SAMPLE_RATE,
            seeded=True,
            native_speed=(0.5, 2.0),
        )
        super().__init__(name, capabilities, executor, max_concurrency, waiting)
        self._threads = threads
        self._model: object | None = None

    def _load(self) -> None:
        from hibari import Hibari

        self._model = Hibari(voice=BUNDLED_VOICE, threads=self._threads)

    def _warm_up(self) -> None:
        self._render(SegmentRequest(text="Ready.", language="en", voice=BUNDLED_VOICE))

    def _render(self, request: SegmentRequest) -> PCM:
        assert self._model is not None, "load() runs before synthesis"
        # hibari draws fresh noise when given no seed; a fixed default makes the same request sound the same
        seed = DEFAULT_SEED if request.seed is None else request.seed
        audio = self._model(request.text, speed=request.speed, seed=seed)  # type: ignore[operator]
        return np.asarray(audio, dtype=np.float32)


def _build(config: EngineSettings, options: NoOptions, context: BuildContext) -> HibariEngine:
    """Small and fast: one thread per run, as many runs as cores unless settings say."""
    return HibariEngine(
        config.name,
        context.executor,
        threads=config.threads or 1,
        max_concurrency=config.fixed_concurrency or context.cores,
        waiting=waiting_of(config),
    )


KIND = EngineKind("hibari", NoOptions, _build, "hibari, 7.9 MB distilled from Kokoro: English, fast")
