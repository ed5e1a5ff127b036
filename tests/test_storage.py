"""The artifact store: one contract for a directory and for S3-compatible storage, and gateways and
workers on separate disks handing each other job audio and voices through S3.

The S3 server is moto's standalone server (``python -m moto.server``): a real HTTP server speaking
S3's REST protocol with SigV4, run as its own process. No full object store (MinIO, Garage, Ceph)
installs from the package registries this suite may use; moto is the best available.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest
from botocore.config import Config
from harness.s3 import s3_server
from harness.server import free_port, start, start_server
from harness.texts import SHORT_TEXTS

from tests.support.audio import decode
from tests.support.signals import voice_like
from voxserve.audio.pcm import wav_bytes
from voxserve.config import ReferenceSettings, StorageSettings
from voxserve.jobs.files import JobFiles
from voxserve.storage import ArtifactStore, LocalStore, StorageError, open_artifacts
from voxserve.storage.s3 import S3Store
from voxserve.voices import VoiceLibrary
from voxserve.voices.reference import check_reference

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "voxserve", "AWS_SECRET_ACCESS_KEY": "voxserve-secret"}
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A standalone S3-compatible server on a free loopback port, with one bucket."""
    with s3_server() as url:
        s3_client(url).create_bucket(Bucket="voxserve")
        yield url


def s3_client(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(**config),
    )


@pytest.fixture(params=["directory", pytest.param("s3", marks=pytest.mark.integration)])
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "directory":
        return LocalStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store("voxserve", f"test-{secrets.token_hex(4)}", client=s3_client(endpoint))


def test_objects_ranges_listing_usage_and_removal(artifacts: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 1024)  # 256 KiB: several read blocks
    artifacts.put_file("jobs/j1/out.mp3", source)
    artifacts.put_bytes("jobs/j1/out.srt", b"1\n")
    artifacts.put_bytes("jobs/j2/out.mp3", b"abc")
    artifacts.put_bytes("voices/v_1.json", b"{}")

    assert artifacts.size("jobs/j1/out.mp3") == 256 * 1024
    assert artifacts.get_bytes("jobs/j1/out.srt") == b"1\n"
    assert artifacts.get_bytes("jobs/missing") is None and artifacts.size("jobs/missing") is None
    assert b"".join(artifacts.read("jobs/j1/out.mp3")) == source.read_bytes()
    assert b"".join(artifacts.read("jobs/j1/out.mp3", 1000, 1010)) == source.read_bytes()[1000:1010]
    assert b"".join(artifacts.read("jobs/j1/out.mp3", 262_000)) == source.read_bytes()[262_000:]
    assert artifacts.keys("jobs/") == ["jobs/j1/out.mp3", "jobs/j1/out.srt", "jobs/j2/out.mp3"]
    assert artifacts.keys("jobs/j1/") == ["jobs/j1/out.mp3", "jobs/j1/out.srt"]
    assert artifacts.keys("voices/v_") == ["voices/v_1.json"]
    assert artifacts.usage("jobs/") == 256 * 1024 + 2 + 3

    artifacts.delete_prefix("jobs/j1/")
    artifacts.delete("voices/v_1.json")
    artifacts.delete("voices/never-there")
    assert artifacts.keys("jobs/") == ["jobs/j2/out.mp3"] and artifacts.keys("voices/") == []


def test_a_running_jobs_live_parts_are_read_from_any_point(artifacts: ArtifactStore, tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "scratch", artifacts)
    assert not files.in_place
    stream = tmp_path / "stream.mp3"
    stream.write_bytes(b"HEADER")
    files.restart_live("j1", stream)
    files.put_live("j1", 6, b"first")
    files.put_live("j1", 11, b"second")
    assert b"".join(files.live_since("j1", 0)) == b"HEADERfirstsecond"
    assert b"".join(files.live_since("j1", 0, most=8)) == b"HEADERfi"  # a long job is read in pieces
    assert b"".join(files.live_since("j1", 8)) == b"rstsecond"
    assert files.live_since("j1", 17) == []
    files.restart_live("j1", stream)  # a resumed job starts its parts again from what it rebuilt
    assert b"".join(files.live_since("j1", 0)) == b"HEADER"

    output = files.directory("j1") / "out.mp3"
    output.write_bytes(b"HEADERfirstsecondEND")
    files.publish("j1", [output])
    assert artifacts.keys("jobs/j1/") == ["jobs/j1/out.mp3"]  # the live parts went with publishing
    assert not (tmp_path / "scratch" / "j1").exists()
    files.remove("j1")
    assert artifacts.keys("jobs/") == []


def test_the_default_store_is_data_dir_and_moves_nothing(tmp_path: Path) -> None:
    artifacts = open_artifacts(StorageSettings(), tmp_path)
    files = JobFiles(tmp_path / "jobs", artifacts)
    assert files.in_place
    output = files.directory("j1") / "out.wav"
    output.write_bytes(b"RIFF")
    files.publish("j1", [output])
    files.put_live("j1", 0, b"ignored")
    assert output.read_bytes() == b"RIFF" and artifacts.keys("jobs/") == ["jobs/j1/out.wav"]
    nas = open_artifacts(StorageSettings(url=f"file://{tmp_path / 'nas'}"), tmp_path)
    assert isinstance(nas, LocalStore) and nas.root == tmp_path / "nas"


def test_keys_cannot_leave_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leaves the store"):
        LocalStore(tmp_path).put_bytes("../outside", b"x")


def test_storage_urls_are_checked() -> None:
    with pytest.raises(ValueError, match="s3://bucket/prefix, file:///path or a path"):
        StorageSettings(url="ftp://example/x")
    with pytest.raises(ValueError, match="needs a bucket"):
        StorageSettings(url="s3:///prefix")


def test_an_unreachable_object_store_is_a_503_error() -> None:
    client = s3_client(f"http://127.0.0.1:{free_port()}", retries={"max_attempts": 1}, connect_timeout=1)
    store = S3Store("voxserve", client=client)
    with pytest.raises(StorageError, match="bucket 'voxserve'") as caught:
        store.get_bytes("jobs/x")
    assert caught.value.status_code == 503


def test_voices_stored_by_one_library_are_found_and_fetched_by_another(
    s3_endpoint: str, tmp_path: Path
) -> None:
    prefix = f"voices-{secrets.token_hex(4)}"
    gateway = VoiceLibrary(S3Store("voxserve", prefix, client=s3_client(s3_endpoint)), tmp_path / "a")
    worker = VoiceLibrary(S3Store("voxserve", prefix, client=s3_client(s3_endpoint)), tmp_path / "b")
    recording = check_reference(wav_bytes(voice_like(4.0, 24000), 24000), ReferenceSettings())
    voice, created = gateway.add_reference(recording, name="narrator", prompt_text="Hello there.")
    assert created
    found = worker.require("narrator")
    assert found == voice
    reference = worker.reference(found)
    assert reference.path.parent == tmp_path / "b" and reference.path.read_bytes()[:4] == b"RIFF"
    worker.delete("narrator")
    assert gateway.get(voice.id) is None and gateway.list() == []


def shared_env(s3_endpoint: str, **more: str) -> dict[str, str]:
    """Settings of processes that share one Redis queue and one bucket, with the fast engine."""
    prefix = f"voxserve-storage-{secrets.token_hex(4)}"
    return {
        **CREDENTIALS,
        "VOXSERVE_ENGINES": json.dumps([{"name": "hibari", "kind": "hibari"}]),
        "VOXSERVE_EMBEDDED": "false",
        "VOXSERVE_DEFAULT_ENGINE": "hibari",
        "VOXSERVE_JOBS__WORKERS": "0",
        "VOXSERVE_JOBS__QUEUE_URL": "redis://127.0.0.1:6379/0",
        "VOXSERVE_JOBS__QUEUE_PREFIX": prefix,
        "VOXSERVE_STORAGE__URL": f"s3://voxserve/{prefix}",
        "VOXSERVE_STORAGE__ENDPOINT_URL": s3_endpoint,
        "VOXSERVE_STORAGE__REGION": REGION,
        **more,
    }


def test_a_job_begun_on_one_machine_is_finished_whole_on_another(s3_endpoint: str, tmp_path: Path) -> None:
    """Two machines in miniature (separate data directories, one Redis queue, one bucket): the first
    worker dies mid-job; the second, on its own disk, has none of the audio so far, so it starts the
    job again rather than resuming over a hole; the gateway serves the result whole, by Range and
    with its captions, and neither its disk nor the second worker's keeps any of it."""
    env = shared_env(s3_endpoint, VOXSERVE_JOBS__LEASE_SECONDS="2")
    gateway = start_server(tmp_path / "gateway", tmp_path / "gateway.log", env)
    workers = []
    try:
        body = {"input": " ".join(SHORT_TEXTS[:10]), "voice": "heart", "response_format": "wav"}
        job_id = httpx.post(f"{gateway.url}/v1/jobs", json=body, timeout=10).json()["id"]
        workers.append(start(["worker"], tmp_path / "first", tmp_path / "first.log", env))
        state = wait_job(gateway.url, job_id, lambda j: j["progress"]["segments_done"] >= 2)
        workers[0].kill()
        workers.append(start(["worker"], tmp_path / "second", tmp_path / "second.log", env))
        state = wait_job(gateway.url, job_id, lambda j: j["status"] in ("succeeded", "failed"))
        assert state["status"] == "succeeded" and state["attempts"] == 2, state
        audio = decode(httpx.get(f"{gateway.url}/v1/jobs/{job_id}/audio", timeout=10).content)
        assert audio.duration == pytest.approx(state["progress"]["audio_seconds"], abs=0.1)
        first_second = audio.samples[: audio.sample_rate]
        assert float(np.sqrt(np.mean(first_second**2))) > 0.01, "the start of the audio is silence"
        assert "its audio so far is not on this machine" in (tmp_path / "second.log").read_text()
        whole = httpx.get(f"{gateway.url}/v1/jobs/{job_id}/audio", timeout=10).content
        part = httpx.get(
            f"{gateway.url}/v1/jobs/{job_id}/audio", headers={"Range": "bytes=100-199"}, timeout=10
        )
        assert part.status_code == 206 and part.content == whole[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
        captions = httpx.get(f"{gateway.url}/v1/jobs/{job_id}/captions?format=vtt", timeout=10)
        assert captions.status_code == 200 and SHORT_TEXTS[9] in captions.text
        for machine in ("gateway", "second"):  # published: nothing left (the dead one's disk keeps its part)
            assert not list((tmp_path / machine).glob("jobs/*/*")), machine
    finally:
        for process in [gateway, *workers]:
            process.stop()


def wait_job(url: str, job_id: str, done: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(job := httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return dict(job)


def test_files_removed_while_they_are_listed_are_left_out(tmp_path: Path) -> None:
    """Another process ends a job (or the janitor removes one) during a listing: no error, no ghost."""
    from voxserve.storage.local import files_under

    for job in ("j1", "j2"):
        (tmp_path / job).mkdir()
        for name in ("a", "b", "c"):
            (tmp_path / job / name).write_bytes(b"12345")
    walk = files_under(tmp_path)
    first, size = next(walk)
    for path in first.parent.iterdir():
        if path != first:
            path.unlink()
    shutil.rmtree(tmp_path / ("j2" if first.parent.name == "j1" else "j1"))
    assert [(first, size), *walk] == [(first, 5)]
