"""What operators watch: the metrics every request, job and refusal leaves behind, named by
Prometheus's rules (promtool's linter), and the JSON log lines."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ClientFactory
from tests.support.api import submit, wait_for


def scrape(client: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of ``/metrics``, by sample name."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of a sample's values over the series whose labels include ``labels``."""
    found = [v for have, v in samples.get(name, []) if labels.items() <= have.items()]
    assert found, f"no {name} with {labels}: {samples.get(name)}"
    return sum(found)


def test_requests_syntheses_jobs_and_refusals_are_counted(make_client: ClientFactory) -> None:
    client = make_client(limits={"anonymous": {"chars_per_day": 100}})
    speech = {"input": "Count this please.", "voice": "tone", "response_format": "wav"}
    assert client.post("/v1/audio/speech", json=speech).status_code == 200
    assert client.get("/v1/jobs/j_missing").status_code == 404
    job = submit(client)
    wait_for(client, job["id"], "succeeded")
    over = {**speech, "input": "This one goes over the day's characters."}
    assert client.post("/v1/audio/speech", json=over).status_code == 429
    samples = scrape(client)

    assert value(samples, "voxserve_http_requests_total", route="/v1/audio/speech", status="200") == 1
    assert value(samples, "voxserve_http_requests_total", route="/v1/jobs/{job_id}", status="404") == 1
    assert value(samples, "voxserve_http_request_duration_seconds_count", route="/v1/audio/speech") == 2  # refused too
    assert value(samples, "voxserve_rate_limit_refusals_total", limit="chars_per_day") == 1
    assert value(samples, "voxserve_time_to_first_audio_seconds_count", engine="fake") == 2
    assert value(samples, "voxserve_synthesis_duration_seconds_count", engine="fake") == 2
    assert value(samples, "voxserve_real_time_factor_count", engine="fake") == 2
    assert value(samples, "voxserve_characters_total", engine="fake", voice="tone") > len(speech["input"])
    assert value(samples, "voxserve_audio_seconds_total", engine="fake", voice="tone") > 1
    assert value(samples, "voxserve_jobs", state="ended") == 1
    assert value(samples, "voxserve_jobs", state="queued") == 0
    assert value(samples, "voxserve_jobs_ended_total", status="succeeded") == 1
    assert value(samples, "voxserve_job_queue_wait_seconds_count") == 1
    assert value(samples, "voxserve_worker_healthy") == 1
    assert "voxserve_event_loop_lag_seconds_bucket" in samples


def test_unmatched_paths_share_one_label(make_client: ClientFactory) -> None:
    client = make_client()
    for path in ("/no/such/page", "/another/one", "/v1/../../etc/passwd"):
        client.get(path)
    samples = scrape(client)
    routes = {labels["route"] for labels, _ in samples["voxserve_http_requests_total"]}
    assert "unmatched" in routes and not any("such" in route or "etc" in route for route in routes)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by `make test`")
def test_metric_names_pass_promtool(make_client: ClientFactory) -> None:
    client = make_client()
    client.post("/v1/audio/speech", json={"input": "Lint me.", "response_format": "wav"})
    exposition = client.get("/metrics").text
    linted = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr
