"""Prometheus metrics, one registry per application (no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "voxserve_requests",
            "Synthesis requests by outcome",
            ["engine", "outcome"],
            registry=self.registry,
        )
        self.segments = Counter(
            "voxserve_segments_synthesized",
            "Text segments an engine turned into audio",
            ["engine"],
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "voxserve_audio_seconds",
            "Seconds of audio produced",
            ["engine"],
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "voxserve_time_to_first_audio_seconds",
            "Request start to first audio",
            ["engine"],
            registry=self.registry,
        )
