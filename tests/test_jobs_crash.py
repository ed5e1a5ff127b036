"""Crash safety with real processes, the real embedded engine and SQLite (the chaos run,
``tests/test_chaos.py``, kills workers and a gateway on a shared Redis).

A ``voxserve worker`` (or the whole gateway) is killed with SIGKILL in the
middle of a job; once its lease expires another process takes the job up and
resumes from the last finished segment. The result must be complete, valid
audio: Whisper hears every sentence once. Resuming is the same whatever the
engine, so the fast English engine does the speaking (processes start in a
second and a job takes seconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from faster_whisper import WhisperModel
from harness.server import Process, start, start_server
from harness.texts import SHORT_TEXTS

from tests.support.audio import decode, word_error_rate

SENTENCES = 12  # enough to kill a worker in the middle of the job
LEASE = "2"
HIBARI = {
    "VOXSERVE_ENGINES": json.dumps([{"name": "hibari", "kind": "hibari"}]),
    "VOXSERVE_EMBEDDED": "false",
    "VOXSERVE_DEFAULT_ENGINE": "hibari",
}


def job_state(url: str, job_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json())


def wait_until(url: str, job_id: str, done: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(job := job_state(url, job_id)):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


TEXT = " ".join(SHORT_TEXTS[:SENTENCES])


def submit(url: str) -> str:
    body = {
        "input": TEXT,
        "model": "hibari",
        "voice": "heart",
        "response_format": "mp3",
        "name": "resumed",
    }
    response = httpx.post(f"{url}/v1/jobs", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def check_complete(url: str, job: dict[str, Any], whisper: WhisperModel) -> None:
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    audio = httpx.get(f"{url}{job['links']['audio']}", timeout=30).content
    decoded = decode(audio)
    assert decoded.duration == pytest.approx(job["progress"]["audio_seconds"], abs=0.1)
    heard, error_rate = word_error_rate(whisper, audio, TEXT)
    assert error_rate <= 0.1, f"WER {error_rate:.2f}: {heard!r}"


def test_sigkilled_worker_loses_nothing(tmp_path: Path, whisper: WhisperModel) -> None:
    env = {"VOXSERVE_JOBS__LEASE_SECONDS": LEASE, "VOXSERVE_JOBS__WORKERS": "0", **HIBARI}
    gateway = start_server(tmp_path, tmp_path / "gateway.log", env)
    workers: list[Process] = []
    try:
        job_id = submit(gateway.url)
        workers.append(start(["worker"], tmp_path, tmp_path / "worker1.log", env))
        wait_until(gateway.url, job_id, lambda j: j["progress"]["segments_done"] >= 2)
        workers[0].kill()
        interrupted = job_state(gateway.url, job_id)
        done = interrupted["progress"]["segments_done"]
        assert interrupted["status"] == "running" and done < SENTENCES
        workers.append(start(["worker"], tmp_path, tmp_path / "worker2.log", env))
        job = wait_until(gateway.url, job_id, lambda j: j["status"] in ("succeeded", "failed"))
        check_complete(gateway.url, job, whisper)
        log = (tmp_path / "worker2.log").read_text()
        assert f"job {job_id} started (attempt 2 of 3)" in log
    finally:
        for process in [gateway, *workers]:
            process.stop()


def test_gateway_killed_mid_job_resumes_after_restart(tmp_path: Path, whisper: WhisperModel) -> None:
    env = {"VOXSERVE_JOBS__LEASE_SECONDS": LEASE, "VOXSERVE_JOBS__WORKERS": "1", **HIBARI}
    first = start_server(tmp_path, tmp_path / "gateway1.log", env)
    try:
        job_id = submit(first.url)
        wait_until(first.url, job_id, lambda j: j["progress"]["segments_done"] >= 3)
    finally:
        first.kill()
    second = start_server(tmp_path, tmp_path / "gateway2.log", env)
    try:
        job = wait_until(second.url, job_id, lambda j: j["status"] in ("succeeded", "failed"))
        check_complete(second.url, job, whisper)
    finally:
        second.stop()
