"""Run real ``voxserve serve`` and ``voxserve worker`` processes on loopback (benchmarks and tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

VOXSERVE = Path(sys.executable).parent / "voxserve"


#: Benchmarks of engine work run without the segment cache: a repeated text would be a cache hit.
NO_CACHE = {"VOXSERVE_CACHE_MAX_BYTES": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A voxserve process and its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


#: A models directory (set by the tests once their first server has made one) whose model and voice
#: set every new data directory starts with, hard-linked: a process would otherwise assemble the
#: model and install the voices again, about two seconds per fresh data directory.
SEED_MODELS_ENV = "VOXSERVE_SEED_MODELS"


def _seed_models(data_dir: Path) -> None:
    seed = os.environ.get(SEED_MODELS_ENV)
    if not seed:
        return
    models = data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for source in Path(seed).glob("kokoro-v1.0*"):
        target = models / source.name
        if not target.exists():
            try:
                os.link(source, target)
            except OSError:  # another file system: the process makes its own
                return


def start(args: list[str], data_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> Process:
    _seed_models(data_dir)
    environment = {**os.environ, "VOXSERVE_DATA_DIR": str(data_dir), **(env or {})}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(VOXSERVE), *args], stdout=log, stderr=subprocess.STDOUT, env=environment
        )
    return Process(process, log_path)


def start_server(
    data_dir: Path, log_path: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Process:
    """``voxserve serve`` on ``port`` (default: a free one), once ``/readyz`` answers 200."""
    port = port or free_port()
    server = start(["serve", "--host", "127.0.0.1", "--port", str(port)], data_dir, log_path, env)
    server.url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server.url, server.process)
    except BaseException:
        server.stop()
        raise
    return server


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
    server = start_server(data_dir, log_path, env)
    try:
        yield server.url
    finally:
        server.stop()


def timed_speech(client: httpx.Client, body: Mapping[str, object]) -> tuple[float, float, int]:
    """(time to first byte, time to last byte, bytes) of one streamed speech request."""
    started = time.perf_counter()
    first = None
    size = 0
    with client.stream("POST", "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            first = first or time.perf_counter()
            size += len(chunk)
    end = time.perf_counter()
    return (first or end) - started, end - started, size
