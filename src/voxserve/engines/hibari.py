"""hibari: a 7.9 MB English-only model distilled from Kokoro, about 100x real time.

Only the ``heart`` voice ships inside the package; hibari's other voices
download from a model hub on first use, so voxserve never offers them. Its
output is quiet; the audio pipeline normalizes level for every engine.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

import numpy as np

from voxserve.engine_settings import EngineSettings
from voxserve.engines.embedded import EmbeddedEngine, Waiting
from voxserve.engines.kind import BuildContext, EngineKind, NoOptions, waiting_of
from voxserve.values import PCM, Capabilities, SegmentRequest, VoiceInfo

SAMPLE_RATE = 24000
BUNDLED_VOICE = "heart"
DEFAULT_SEED = 0


class HibariEngine(EmbeddedEngine[Any]):
    """hibari through its own Python API; seeded noise makes output reproducible. A runner is one
    ``Hibari`` model (7.9 MB)."""

    def __init__(
        self,
        name: str,
        executor: Executor,
        threads: int = 1,
        lanes: int = 2,
        waiting: Waiting = Waiting(),
        warm_up: bool = True,
    ) -> None:
        capabilities = Capabilities(
            languages=frozenset({"en"}),
            voices=(VoiceInfo(id=BUNDLED_VOICE, engine=name, languages=("en",), gender="female"),),
            sample_rate=SAMPLE_RATE,
            seeded=True,
            native_speed=(0.5, 2.0),
        )
        super().__init__(name, capabilities, executor, threads, lanes, waiting, warm_up)

    def _load(self) -> None:
        import hibari  # noqa: F401 - fails here, at load, if it is missing

    def _new_runner(self, threads: int) -> Any:
        from hibari import Hibari

        return Hibari(voice=BUNDLED_VOICE, threads=threads)

    def _warm_up_request(self) -> SegmentRequest:
        return SegmentRequest(text="Ready.", language="en", voice=BUNDLED_VOICE)

    def _render(self, runner: Any, request: SegmentRequest) -> PCM:
        # hibari draws fresh noise when given no seed; a fixed default makes the same request sound the same
        seed = DEFAULT_SEED if request.seed is None else request.seed
        audio = runner(request.text, speed=request.speed, seed=seed)
        return np.asarray(audio, dtype=np.float32)


def _build(config: EngineSettings, options: NoOptions, context: BuildContext) -> HibariEngine:
    """Small and fast: a lane per core, each on one thread, and a runner on every core for a lone
    stream, unless ``threads``/``max_concurrency`` say."""
    return HibariEngine(
        config.name,
        context.executor,
        threads=config.threads or context.cores,
        lanes=config.fixed_concurrency or context.cores,
        waiting=waiting_of(config),
        warm_up=config.warm_up,
    )


KIND = EngineKind("hibari", NoOptions, _build, "hibari, 7.9 MB distilled from Kokoro: English, fast")
