"""What operators watch: the metrics every request, job and refusal leaves behind, named by
Prometheus's rules (promtool's linter), and the JSON log lines."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli
import pytest
import sentry_sdk
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import ClientFactory, submit, wait_for
from voxserve.config import Settings
from voxserve.logs import RequestIdFilter, json_formatter
from voxserve.tracing import configure_sentry, configure_tracing


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
    assert (
        value(samples, "voxserve_http_request_duration_seconds_count", route="/v1/audio/speech") == 2
    )  # refused too
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


@pytest.mark.integration  # runs promtool
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by `make test`")
def test_metric_names_pass_promtool(make_client: ClientFactory) -> None:
    client = make_client()
    client.post("/v1/audio/speech", json={"input": "Lint me.", "response_format": "wav"})
    exposition = client.get("/metrics").text
    linted = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr


def test_a_synthesis_log_line_as_json_has_its_fields(
    fake_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="voxserve.requests"):
        caplog.handler.addFilter(RequestIdFilter())
        response = fake_client.post(
            "/v1/audio/speech",
            json={"input": "Log me.", "response_format": "mp3"},
            headers={"X-Request-ID": "r-42"},
        )
    assert response.status_code == 200
    record = next(r for r in caplog.records if r.getMessage().startswith("request r-42 ok"))
    line = json.loads(json_formatter().format(record))
    assert line["request_id"] == "r-42" and line["route"] == "/v1/audio/speech"
    assert line["level"] == "INFO" and line["logger"] == "voxserve.requests"
    assert line["engine"] == "fake" and line["key_id"] == "-" and line["chars"] == len("Log me.")
    assert line["ttfa_ms"] >= 0 and line["total_ms"] >= line["ttfa_ms"] and line["audio_s"] > 0


def test_spans_for_requests_plans_engine_calls_encoding_and_jobs(make_client: ClientFactory) -> None:
    exporter = InMemorySpanExporter()
    assert configure_tracing(Settings(), exporter=exporter)
    client = make_client()
    assert client.post(
        "/v1/audio/speech", json={"input": "Trace me. Twice.", "response_format": "mp3"}
    ).is_success
    wait_for(client, submit(client)["id"], "succeeded")
    spans = exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert {"plan", "engine.call", "encode", "job", "job.queue_wait", "job.segment"} <= names
    request = next(s for s in spans if s.name == "POST /v1/audio/speech")  # FastAPI's own span
    inside = [s for s in spans if s.context.trace_id == request.context.trace_id]
    assert {"plan", "engine.call", "encode"} <= {s.name for s in inside}
    calls = [s for s in inside if s.name == "engine.call"]
    assert len(calls) == 2 and all((s.attributes or {}).get("engine") == "fake" for s in calls)
    job = next(s for s in spans if s.name == "job")
    segments = [
        s for s in spans if s.name == "job.segment" and s.parent and s.parent.span_id == job.context.span_id
    ]
    assert len(segments) == 3  # JOB_TEXT's three sentences


def test_errors_are_reported_to_sentry(caplog: pytest.LogCaptureFixture) -> None:
    received: list[bytes] = []

    class Ingest(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            coding = self.headers.get("Content-Encoding")
            received.append(
                brotli.decompress(body)
                if coding == "br"
                else zlib.decompress(body, 31)
                if coding == "gzip"
                else body
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dsn = f"http://public@127.0.0.1:{server.server_address[1]}/1"
        assert configure_sentry(Settings(sentry_dsn=dsn))
        logging.getLogger("voxserve.test").error("engine pool on fire: %s", "no instance left")
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.init()  # no DSN: reporting off again for the rest of the suite
        server.shutdown()
    body = b"".join(received)
    assert b"engine pool on fire" in body and b"no instance left" in body
