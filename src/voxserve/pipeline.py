"""The one synthesis path: plan (every check, no engine time), then render (segment by segment).

The synchronous API, its streaming variants, ``/tts``, the job worker and
the CLI all call :meth:`Pipeline.plan` and then consume :meth:`Pipeline.encode`,
:meth:`Pipeline.pcm` or :meth:`Pipeline.segment_audio`; none has a copy of
it. :mod:`voxserve.selection` picks engines and voices, :mod:`voxserve.planning`
checks and decides, :mod:`voxserve.rendering` makes the audio.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor

from voxserve.cache import SegmentCache
from voxserve.config import Settings
from voxserve.engines.base import Elsewhere, Engine
from voxserve.metrics import Metrics
from voxserve.planning import JOB_PRIORITY, SPEECH_PRIORITY, Plan, Planner, Segment
from voxserve.rendering import Renderer, Stats
from voxserve.request import SpeechRequest
from voxserve.selection import Selection
from voxserve.storage import LocalStore
from voxserve.text import TextNormalizer
from voxserve.voices import VoiceLibrary
from voxserve.voices.lexicons import Lexicons

__all__ = ["JOB_PRIORITY", "SPEECH_PRIORITY", "Pipeline", "Plan", "Segment", "SpeechRequest", "Stats"]


class Pipeline:
    """Selection, planning and rendering over one set of loaded engines."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        normalizer: TextNormalizer,
        settings: Settings,
        executor: Executor,
        metrics: Metrics,
        voices: VoiceLibrary | None = None,
        cache: SegmentCache | None = None,
    ) -> None:
        self.voices = voices or VoiceLibrary(LocalStore(settings.data_dir))
        self.selection = Selection(engines, settings, self.voices)
        self.planner = Planner(self.selection, normalizer, settings, Lexicons(self.voices.artifacts))
        self.metrics = metrics
        self.renderer = Renderer(normalizer, settings, executor, metrics, cache)
        self.normalizer = normalizer
        self.plan = self.planner.plan
        self.plan_in_thread = self.planner.plan_in_thread
        self.pcm = self.renderer.pcm
        self.segment_audio = self.renderer.segment_audio
        self.encode = self.renderer.encode

    @property
    def engines(self) -> dict[str, Engine]:
        return self.selection.engines

    @property
    def cache(self) -> SegmentCache | None:
        return self.renderer.cache

    def settled(self, plan: Plan) -> bool:
        """Whether the plan was made with its engine and the normalizer loaded: one made while they
        load (a job queued at start) may cut the text otherwise, so its decisions are not binding."""
        return all(engine.ready for engine in plan.engines) and self.normalizer.loaded

    @property
    def ready(self) -> bool:
        """Whether this process can serve: the normalizers and its own engines loaded. Engines on
        other servers do not count: this process serves its other engines (and takes jobs) while
        one is down, and taking it out of rotation would not bring that one back."""
        local = (engine for engine in self.engines.values() if not isinstance(engine, Elsewhere))
        return self.normalizer.loaded and all(engine.ready for engine in local)
