"""Run a real ``voxserve serve`` process on a free loopback port (benchmarks and tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

VOXSERVE = Path(sys.executable).parent / "voxserve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Poll /readyz until the engines are loaded; fail fast if the process dies."""
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


@contextmanager
def running_server(data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``voxserve serve`` with the embedded defaults; yields its base URL."""
    port = free_port()
    environment = {**os.environ, "VOXSERVE_DATA_DIR": str(data_dir), **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(VOXSERVE), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
