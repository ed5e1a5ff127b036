"""``deploy/nginx/voxserve.conf`` with Debian's nginx in front of a real ``voxserve serve``.

The shipped file is used as it is, with only what it marks CHANGE filled in
for a loopback test (ports, a self-signed certificate). Clients connect from
other loopback addresses (127.0.0.2, 127.0.0.3, ...) so that the address
nginx forwards is each one's own.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from harness.instances import ROOT, wait_listening
from harness.server import Process, free_port, start_server

from tests.support.audio import decode

CONF = ROOT / "deploy" / "nginx" / "voxserve.conf"
REPLICAS = ROOT / "deploy" / "nginx" / "voxserve-replicas.conf"
HOST = "tts.example.com"
SLOW_WORD = "glacial"
#: A fake engine that takes 0.25 s a segment, and 62 s before the first audio of a segment saying SLOW_WORD.
ENGINE = {
    "name": "fake",
    "kind": "fake",
    "options": {"delay": 0.25, "slow_on": SLOW_WORD, "slow_seconds": 62},
}
LONG = " ".join(f"Sentence number {n} is here." for n in range(6))


@dataclass
class Edge:
    https: str
    http: str
    voxserve: Process
    directory: Path

    def client(self, source: str = "127.0.0.2", **kwargs: Any) -> httpx.Client:
        """A client of the edge, connecting from ``source`` (a loopback address of its own)."""
        transport = httpx.HTTPTransport(local_address=source, verify=False)
        return httpx.Client(
            base_url=self.https, transport=transport, headers={"Host": HOST}, timeout=120, **kwargs
        )


def certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "edge.pem", directory / "edge.key"
    if not cert.exists():
        command = [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ]
        subprocess.run(command, check=True, capture_output=True)
    return cert, key


def render(source: Path, directory: Path, changes: dict[str, str]) -> Path:
    """The shipped file with its CHANGE lines filled in for this test (each must be there to fill),
    inside a minimal nginx.conf of the test's own."""
    text = source.read_text()
    cert, key = certificate(directory)
    for old, new in {
        **changes,
        "/etc/ssl/certs/voxserve.pem": str(cert),
        "/etc/ssl/private/voxserve.key": str(key),
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    site = directory / source.name
    site.write_text(text)
    main = directory / f"nginx-{source.stem}.conf"
    main.write_text(
        f"worker_processes 1;\npid {directory}/nginx-{source.stem}.pid;\n"
        f"error_log {directory}/error.log warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{ access_log {directory}/access.log; client_body_temp_path {directory}/body; "
        f"proxy_temp_path {directory}/proxy; include {site}; }}\n"
    )
    return main


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    directory = tmp_path_factory.mktemp("edge")
    env = {
        "VOXSERVE_ENGINES": json.dumps([ENGINE]),
        "VOXSERVE_EMBEDDED": "false",
        "VOXSERVE_DEFAULT_ENGINE": "fake",
        "VOXSERVE_AUTH__ALLOWED_HOSTS": json.dumps([HOST, "127.0.0.1"]),
        "VOXSERVE_AUTH__TRUSTED_PROXIES": json.dumps(["127.0.0.1"]),
        "VOXSERVE_LIMITS__ANONYMOUS__REQUESTS_PER_MINUTE": "3",
    }
    voxserve = start_server(directory / "data", directory / "voxserve.log", env)
    https_port, http_port = free_port(), free_port()
    upstream = voxserve.url.removeprefix("http://")
    config = render(
        CONF,
        directory,
        {
            "server 127.0.0.1:8000;": f"server {upstream};",
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "listen 80;": f"listen 127.0.0.1:{http_port};",
        },
    )
    nginx = subprocess.Popen(["nginx", "-c", str(config), "-p", str(directory), "-g", "daemon off;"])
    https = f"https://127.0.0.1:{https_port}"
    try:
        wait_listening(f"http://127.0.0.1:{http_port}", nginx)
        yield Edge(https, f"http://127.0.0.1:{http_port}", voxserve, directory)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        voxserve.stop()


@pytest.fixture(scope="session")
def minute_long(edge: Edge) -> Iterator[dict[str, Any]]:
    """A synthesis that makes no audio for 62 s, started first and joined last: the suite runs meanwhile
    (``conftest.py`` puts the test that starts it first in the session, and the one that ends it last)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        with edge.client("127.0.0.9") as client:
            body = {"input": f"A {SLOW_WORD} sentence.", "response_format": "wav"}
            response = client.post("/v1/audio/speech", json=body, timeout=200)
        outcome.update(status=response.status_code, body=response.content, seconds=time.monotonic() - started)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield outcome
    thread.join(timeout=200)


def test_a_synthesis_silent_for_over_a_minute_starts_the_clock(minute_long: dict[str, Any]) -> None:
    """Only starts the minute-long request; the last test of the session checks it."""
    assert not minute_long, "it cannot have ended yet"


def test_http_goes_to_https(edge: Edge) -> None:
    answer = httpx.get(f"{edge.http}/healthz", headers={"Host": HOST})
    assert answer.status_code == 301 and answer.headers["location"] == f"https://{HOST}/healthz"


def test_audio_streams_through_chunk_by_chunk(edge: Edge) -> None:
    body = {"input": LONG, "response_format": "pcm"}
    with edge.client("127.0.0.2") as client, client.stream("POST", "/v1/audio/speech", json=body) as response:
        assert response.status_code == 200
        started = time.monotonic()
        arrivals = [time.monotonic() - started for _ in response.iter_raw()]
    assert len(arrivals) >= 6, "one piece a segment at least"
    assert arrivals[-1] > 1.0 and arrivals[0] < arrivals[-1] / 3, arrivals


def test_a_large_upload_is_stopped_at_the_edge(edge: Edge) -> None:
    with edge.client("127.0.0.3") as client:
        answer = client.post(
            "/v1/voices", files={"audio": ("big.wav", b"\0" * (17 * 1024 * 1024), "audio/wav")}
        )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "input_too_large"
    assert "at the edge" in answer.json()["error"]["message"]


def test_each_clients_address_reaches_voxserve_limits_and_log(edge: Edge) -> None:
    say = {"input": "Hello there.", "response_format": "wav"}
    with edge.client("127.0.0.4") as first, edge.client("127.0.0.5") as second:
        spoofed = {"X-Forwarded-For": "203.0.113.77"}  # a client's own claim: nginx appends the real one
        assert [first.post("/v1/audio/speech", json=say, headers=spoofed).status_code for _ in range(4)] == [
            200,
            200,
            200,
            429,
        ]
        assert second.post("/v1/audio/speech", json=say).status_code == 200, "another address, another count"
    time.sleep(0.3)
    log = (edge.directory / "voxserve.log").read_text()
    assert re.search(r"request \w+ ok client=127\.0\.0\.4 key=- engine=fake", log)
    assert "client=203.0.113.77" not in log
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.6")) as direct:
        answer = direct.get(f"{edge.voxserve.url}/v1/models", headers={"X-Forwarded-For": "10.9.9.9"})
        assert answer.status_code == 200, "127.0.0.6 is no trusted proxy: its header is not believed"


def test_job_events_pass_as_sse_and_websocket(edge: Edge) -> None:
    with edge.client("127.0.0.7") as client:
        job = client.post("/v1/jobs", json={"input": LONG, "response_format": "wav"}).json()
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            statuses = [line.split(": ", 1)[1] for line in events.iter_lines() if line.startswith("event: ")]
        assert statuses[-1] == "succeeded" and len(statuses) >= 2
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    url = f"{edge.https.replace('https', 'wss')}/v1/jobs/{job['id']}/ws"
    with websockets.sync.client.connect(url, ssl=context) as socket:
        last = json.loads(socket.recv(timeout=30))
    assert last["status"] == "succeeded" and last["progress"]["segments_done"] == 6


def test_the_replicas_file_is_valid_nginx(edge: Edge) -> None:
    upstream = edge.voxserve.url.removeprefix("http://")
    listen = f"listen 127.0.0.1:{free_port()} ssl;"
    changes = {"10.0.0.11:8000": upstream, "10.0.0.12:8000": upstream, "listen 443 ssl;": listen}
    config = render(REPLICAS, edge.directory, changes)
    check = subprocess.run(
        ["nginx", "-t", "-c", str(config), "-p", str(edge.directory)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_the_minute_long_synthesis_was_not_cut(minute_long: dict[str, Any]) -> None:
    deadline = time.monotonic() + 120
    while "status" not in minute_long:
        assert time.monotonic() < deadline, "the request never ended"
        time.sleep(0.5)
    assert minute_long["status"] == 200 and minute_long["seconds"] > 60
    audio = decode(minute_long["body"])
    assert audio.duration == pytest.approx(3 * 0.2 + 0.25, abs=0.05)
