"""Prometheus metrics, one registry per application (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@runtime_checkable
class Snapshotting(Protocol):
    """What the instance metrics and ``/v1/engines`` read: an engine's name and its instances' snapshots
    (a pool's servers, a batch engine's GPUs)."""

    name: str

    def snapshot(self) -> list[dict[str, object]]: ...


class PoolCollector(Collector):
    """Each pool instance's health, load, limit and counts, read at scrape time.

    Read from the pools rather than mirrored into gauges on every change, so
    the hot path does no metrics work and the figures can never drift.
    """

    def __init__(self, pools: Iterable[Snapshotting]) -> None:
        self._pools = list(pools)

    def collect(self) -> Iterator[Metric]:
        labels = ["engine", "url", "role"]
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "healthy": GaugeMetricFamily("voxserve_instance_healthy", "1 if taking traffic", labels=labels),
            "in_flight": GaugeMetricFamily("voxserve_instance_in_flight", "Requests running", labels=labels),
            "limit": GaugeMetricFamily("voxserve_instance_limit", "Current concurrency limit", labels=labels),
            "latency_ms_ewma": GaugeMetricFamily(
                "voxserve_instance_latency_seconds", "Latency of successful requests (EWMA)", labels=labels
            ),
            "requests": CounterMetricFamily("voxserve_instance_requests", "Requests sent", labels=labels),
            "errors": CounterMetricFamily("voxserve_instance_errors", "Requests that failed", labels=labels),
        }
        for pool in self._pools:
            for instance in pool.snapshot():
                values = [pool.name, str(instance["url"]), str(instance["role"])]
                for key, family in families.items():
                    value = instance[key]
                    if isinstance(value, int | float):  # healthy is a bool, an int; no latency yet is None
                        family.add_metric(values, value / 1000 if key == "latency_ms_ewma" else float(value))
        yield from families.values()


class WorkerState(Protocol):
    """What the worker metrics read of a worker."""

    id: str

    @property
    def healthy(self) -> bool: ...

    @property
    def store_errors(self) -> int: ...


class RuntimeCollector(Collector):
    """Event-loop lag over the recent window, and each job worker's health, read at scrape time."""

    def __init__(
        self,
        lag: Callable[[], dict[float, float]],
        workers: Callable[[], Iterable[WorkerState]],
    ) -> None:
        self._lag = lag
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        window = GaugeMetricFamily(
            "voxserve_event_loop_lag_window_seconds",
            "Event-loop lag over the last 30 s, by quantile level (1 is the maximum)",
            labels=["level"],
        )
        for quantile, value in self._lag().items():
            window.add_metric([f"{quantile:g}"], round(value, 6))  # microseconds: no float noise
        healthy = GaugeMetricFamily(
            "voxserve_worker_healthy", "1 while the job worker's store calls succeed", labels=["worker"]
        )
        errors = CounterMetricFamily(
            "voxserve_worker_store_errors", "Job store calls that failed in the worker", labels=["worker"]
        )
        for worker in self._workers():
            healthy.add_metric([worker.id], float(worker.healthy))
            errors.add_metric([worker.id], float(worker.store_errors))
        yield from (window, healthy, errors)


LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


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
            ["engine", "voice"],
            registry=self.registry,
        )
        self.characters = Counter(
            "voxserve_characters",
            "Characters of text turned into audio",
            ["engine", "voice"],
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "voxserve_time_to_first_audio_seconds",
            "Request start to first audio",
            ["engine"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.synthesis_duration = Histogram(
            "voxserve_synthesis_duration_seconds",
            "Request start to last audio, of syntheses that succeeded",
            ["engine"],
            buckets=(*LATENCY_BUCKETS, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "voxserve_real_time_factor",
            "Synthesis time over the audio it made (below 1: faster than real time), per synthesis",
            ["engine"],
            buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0),
            registry=self.registry,
        )
        self.http_requests = Counter(
            "voxserve_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "voxserve_http_request_duration_seconds",
            "HTTP request start to the answer's last byte (streams included)",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limit_refusals = Counter(
            "voxserve_rate_limit_refusals",
            "Requests refused by a quota, by the limit that refused them",
            ["limit"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "voxserve_jobs",
            "Jobs in the store by state (queued: due; scheduled: waiting for a time or a retry), at scrape",
            ["state"],
            registry=self.registry,
        )
        self.jobs_ended = Counter(
            "voxserve_jobs_ended",
            "Jobs this process's workers ended, by status",
            ["status"],
            registry=self.registry,
        )
        self.job_storage_bytes = Gauge(
            "voxserve_job_storage_bytes",
            "Bytes job files take (this machine's running jobs and the artifact store's), at scrape",
            registry=self.registry,
        )
        self.job_storage_limit_bytes = Gauge(
            "voxserve_job_storage_limit_bytes",
            "jobs.disk_limit_bytes: new jobs are refused, and running ones fail, beyond it",
            registry=self.registry,
        )
        self.job_queue_wait = Histogram(
            "voxserve_job_queue_wait_seconds",
            "From when a job was due to when a worker claimed it",
            buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0),
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            "voxserve_cache_lookups",
            "Segment cache lookups by result (hit, miss)",
            ["engine", "result"],
            registry=self.registry,
        )
        self.cache_bytes = Gauge(
            "voxserve_cache_bytes", "Bytes of audio in the segment cache", registry=self.registry
        )
        self.event_loop_lag = Histogram(
            "voxserve_event_loop_lag_seconds",
            "How much later than asked the event loop ran a 50 ms timer",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
            registry=self.registry,
        )
