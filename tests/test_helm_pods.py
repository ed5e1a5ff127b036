"""The Helm chart's GPU cluster values, rendered and run: every pod's command, environment and
probes started as processes against each other (``harness/pods.py`` says how a cluster is stood in
for), the CosyVoice sidecars being the stand-in that follows upstream's FastAPI server.

The gateway has no engine of its own: it must turn Ready and serve speech through the workers'
engine servers, reached by the names the chart gives them; a job runs on a worker; a worker's
engine server that stops leaves the gateway Ready and serving through the other.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx
import numpy as np
import pytest
from harness import pods
from harness.redisproc import PrivateRedis
from harness.s3 import s3_server

from tests.support.audio import decode
from tests.support.signals import voice_like
from voxserve.audio.pcm import wav_bytes

pytestmark = pytest.mark.integration

VALUES = pods.CHART / "values-gpu-cluster.yaml"
#: One gateway and two GPU workers (the values ask for 3 and 4); no Sentry to report to here.
SETS = {
    "gateway.autoscaling.enabled": "false",
    "gateway.replicas": "1",
    "worker.replicas": "2",
    "sentryDsnSecret": "",
}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "voxserve", "AWS_SECRET_ACCESS_KEY": "voxserve-secret"}
HOST = {"Host": "tts.example.com"}  # as the Ingress forwards it


IMAGES: dict[str, pods.Image] = {
    "voxserve": lambda address: [str(pods.BIN / "voxserve")],
    # The values' CosyVoice image: upstream's server with issue #1794's fix (docs/engines.md).
    "cosyvoice-server": lambda address: [
        sys.executable,
        "-m",
        "harness.servers",
        "cosyvoice",
        "--fixed-clone",
        "--host",
        address,
    ],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[pods.Pod], str]]:
    """The chart's pods running and Ready, and an admin key made as an operator would."""
    root = tmp_path_factory.mktemp("helm-pods")
    resources = pods.render(VALUES, SETS)
    started = pods.pods_of(resources, root)
    voices = root / "voices-configmap"
    voices.mkdir()
    (voices / "narrator.wav").write_bytes(wav_bytes(voice_like(5.0, 24000), 24000))
    redis = PrivateRedis(root / "redis")
    redis.start()
    with s3_server() as endpoint:
        keys = {"aws_access_key_id": "voxserve", "aws_secret_access_key": "voxserve-secret"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
            Bucket="tts-audio"
        )
        names = {
            "redis.data.svc:6379": f"127.0.0.1:{redis.port}",
            "http://minio.storage.svc:9000": endpoint,
        }
        for pod in started:
            names[f"{pod.name}.tts-voxserve-worker"] = pod.address  # a StatefulSet pod's stable name
        cluster = pods.Cluster(IMAGES, names, {"tts-s3": CREDENTIALS}, {"tts-voices": voices})
        try:
            with pods.running(cluster, started):
                pods.wait_ready(started)
                gateway = next(pod for pod in started if "gateway" in pod.name)
                yield started, _admin_key(cluster, gateway)
        finally:
            redis.stop()


def _admin_key(cluster: pods.Cluster, gateway: pods.Pod) -> str:
    """``voxserve keys create`` with the gateway's own settings, as `kubectl exec` would run it."""
    container = gateway.container("voxserve")
    env = cluster.environment(gateway, container, cluster.mounts(gateway, container))
    made = subprocess.run(
        [str(pods.BIN / "voxserve"), "keys", "create", "ops", "-s", "speech", "-s", "jobs", "-s", "admin"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def through_the_ingress(cluster: tuple[list[pods.Pod], str]) -> httpx.Client:
    """A client of the gateway as the Ingress forwards to it, with the operator's key."""
    started, key = cluster
    gateway = next(pod for pod in started if "gateway" in pod.name)
    return httpx.Client(
        base_url=gateway.url(8000), headers={**HOST, "Authorization": f"Bearer {key}"}, timeout=60
    )


def test_the_gateway_is_ready_and_speaks_through_every_workers_engine_server(
    cluster: tuple[list[pods.Pod], str],
) -> None:
    started, _ = cluster
    with through_the_ingress(cluster) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["engines"]["cosyvoice"]["runs"] == "remote", ready
        for n in range(4):  # texts of their own: a repeated one would come from the gateway's cache
            answer = client.post(
                "/v1/audio/speech", json={"input": f"你好，欢迎使用第{n}次。", "response_format": "wav"}
            )
            assert answer.status_code == 200, answer.text
            audio = decode(answer.content)
            assert audio.sample_rate == 24000 and audio.duration > 0.3
            assert float(np.sqrt(np.mean(audio.samples**2))) > 0.01, "not silence"
        (engine,) = client.get("/v1/engines").json()["engines"]
        served = {instance["url"]: instance["requests"] for instance in engine["instances"]}
        workers = [pod for pod in started if "worker" in pod.name]  # by their stable names, resolved
        assert sorted(served) == [pod.url(50000) for pod in workers]
        assert all(count >= 1 for count in served.values()), f"balanced over both workers' servers: {served}"
        assert client.get("/readyz", headers={"Host": "evil.example"}).status_code == 200, "probes: any Host"
        assert (
            client.post("/v1/audio/speech", headers={"Host": "evil.example"}, json={"input": "x"}).status_code
            == 400
        )


def test_metrics_need_a_key_on_the_api_port_and_none_on_their_own(
    cluster: tuple[list[pods.Pod], str],
) -> None:
    started, _ = cluster
    gateway = next(pod for pod in started if "gateway" in pod.name)
    assert httpx.get(gateway.url(8000) + "/metrics", headers=HOST).status_code == 401
    scraped = httpx.get(gateway.url(9100) + "/metrics")
    assert scraped.status_code == 200 and "voxserve_instance_healthy" in scraped.text


def test_a_job_runs_on_a_worker_and_its_audio_comes_back_through_the_gateway(
    cluster: tuple[list[pods.Pod], str],
) -> None:
    with through_the_ingress(cluster) as client:
        job = client.post("/v1/jobs", json={"input": "第一句话。第二句话。", "response_format": "wav"})
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 60
        while (view := client.get(f"/v1/jobs/{job.json()['id']}").json())["status"] != "succeeded":
            assert view["status"] in ("queued", "running") and time.monotonic() < deadline, view
            time.sleep(0.2)
        audio = decode(client.get(f"/v1/jobs/{view['id']}/audio").content)
        assert audio.sample_rate == 24000 and audio.duration > 0.5


def test_a_workers_engine_server_that_stops_leaves_the_gateway_ready_and_serving(
    cluster: tuple[list[pods.Pod], str],
) -> None:
    worker = next(pod for pod in cluster[0] if pod.name.endswith("worker-1"))
    worker.stop("cosyvoice")
    with through_the_ingress(cluster) as client:
        for n in range(3):
            answer = client.post(
                "/v1/audio/speech", json={"input": f"还在工作{n}。", "response_format": "wav"}
            )
            assert answer.status_code == 200, answer.text
        assert client.get("/readyz").status_code == 200
        deadline = time.monotonic() + 12  # a request that went there, else the next health check
        while True:
            (engine,) = client.get("/v1/engines").json()["engines"]
            down = next(i for i in engine["instances"] if i["url"] == worker.url(50000))
            if "connection refused" in (down["last_error"] or ""):
                break
            assert time.monotonic() < deadline, down
            time.sleep(0.2)
