"""Fixtures: a real ``voxserve serve`` process for API tests, fakes for error paths."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from voxserve.api import create_app
from voxserve.config import Settings
from voxserve.engines import FakeEngine

ROOT = Path(__file__).resolve().parent.parent
VOXSERVE = Path(sys.executable).parent / "voxserve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voxserve exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("voxserve did not become ready")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``voxserve serve`` with the embedded defaults, as a user would start it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("logs") / "server.log"
    env = {**os.environ, "VOXSERVE_DATA_DIR": str(data_dir)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(VOXSERVE), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
    server_log = log_path.read_text()
    assert "Traceback" not in server_log, server_log[-3000:]


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=120) as http:
        yield http


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine(name="fake")


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, default_engine="fake", max_input_chars=500, segment_chars=60)


@pytest.fixture
def fake_client(fake_settings: Settings, fake_engine: FakeEngine) -> Iterator[TestClient]:
    """The real app and pipeline over the deterministic fake engine, loaded and ready."""
    app = create_app(fake_settings, engines={"fake": fake_engine})
    with TestClient(app, raise_server_exceptions=False) as test_client:
        deadline = time.monotonic() + 30
        while test_client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, test_client.get("/readyz").json()
            time.sleep(0.05)
        yield test_client
