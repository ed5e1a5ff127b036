"""Test engine instances as separate processes, and nginx in front of them, for load runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from harness.server import free_port

ROOT = Path(__file__).resolve().parent.parent


STAND_INS = ROOT / "harness" / "servers"


def wait_listening(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"{url} exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} did not start"
            time.sleep(0.05)


def instance_command(
    kind: str, port: int, capacity: int | None = None, seconds_per_char: float = 0.0, error_rate: float = 0.0
) -> list[str]:
    """The command line of one stand-in engine server (``harness/servers``) on ``port``."""
    command = [
        sys.executable,
        "-m",
        "harness.servers",
        kind,
        "--port",
        str(port),
        "--seconds-per-char",
        str(seconds_per_char),
        "--error-rate",
        str(error_rate),
    ]
    return command + (["--capacity", str(capacity)] if capacity is not None else [])


@contextmanager
def engine_instances(
    count: int,
    kind: str = "cosyvoice",
    capacity: int | None = None,
    seconds_per_char: float = 0.0,
    error_rate: float = 0.0,
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """``count`` stand-in engine servers, each its own process on loopback."""
    processes = []
    try:
        for _ in range(count):
            port = free_port()
            command = instance_command(kind, port, capacity, seconds_per_char, error_rate)
            # quiet: an injected fault's traceback is the stand-in's business, not the table's
            quiet = subprocess.DEVNULL
            process = subprocess.Popen(command, cwd=ROOT, stdout=quiet, stderr=quiet)
            processes.append((f"http://127.0.0.1:{port}", process))
        for url, process in processes:
            wait_listening(url, process)
        yield processes
    finally:
        for _, process in processes:
            process.kill()
            process.wait()


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    proxy_connect_timeout 60s;
    proxy_send_timeout 300s;
    proxy_read_timeout 300s;
    send_timeout 300s;
    upstream engines {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://engines;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_cache off;
        }}
    }}
}}
"""


@contextmanager
def nginx(upstreams: list[str], directory: Path) -> Iterator[str]:
    """Debian's nginx as a hand-written gateway configures it: round robin, keepalive, buffering off,
    300 s timeouts."""
    port = free_port()
    servers = "\n".join(f"        server {url.removeprefix('http://')};" for url in upstreams)
    config = directory / "nginx.conf"
    config.write_text(NGINX_CONF.format(dir=directory, servers=servers, port=port))
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(directory), "-g", "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_listening(url, process)
        yield url
    finally:
        process.terminate()
        process.wait()


@contextmanager
def glmtts_apps(*arguments: Sequence[str], logs: Path) -> Iterator[list[str]]:
    """GLM-TTS Gradio stand-ins (``harness/servers/glmtts_gradio.py``), one process each with its
    arguments, started together; their URLs once they answer."""
    logs.mkdir(parents=True, exist_ok=True)
    apps = []
    try:
        for number, args in enumerate(arguments):
            port = free_port()
            command = [sys.executable, "-m", "harness.servers.glmtts_gradio", "--port", str(port), *args]
            with open(logs / f"glmtts-gradio-{number}.log", "ab") as log:
                process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            apps.append((f"http://127.0.0.1:{port}", process))
        for url, process in apps:
            wait_listening(url, process, timeout=60)
        yield [url for url, _ in apps]
    finally:
        for _, process in apps:
            process.terminate()
            process.wait(timeout=10)


def glmtts_checkout(root: Path) -> Path:
    """A GLM-TTS checkout as upstream lays it out (``ckpt/``, ``frontend/``, ``examples/``), with the
    stand-in of ``glmtts_inference.py`` as its script."""
    (root / "ckpt" / "llm").mkdir(parents=True)
    (root / "frontend").mkdir()
    (root / "frontend" / "campplus.onnx").write_bytes(b"")
    (root / "examples").mkdir()
    shutil.copy(STAND_INS / "glmtts_inference.py", root / "glmtts_inference.py")
    return root


#: PyTriton's Triton server, installed by ``make test`` in an environment of its own (numpy < 2).
TRITON_PYTHON = ROOT / ".venv" / "tools" / "triton" / "bin" / "python"


def _triton_ready(http: str) -> bool:
    try:
        return all(
            httpx.get(f"{http}/v2/models/{model}/ready", timeout=2).status_code == 200
            for model in ("cosyvoice2", "cosyvoice3")
        )
    except httpx.HTTPError:
        return False


def _start_triton(arguments: list[str], log: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Start the server on free ports and wait for both models. One that exits while it loads (PyTriton's
    start can fail on a busy machine, or a port was taken meanwhile) is started once more on other
    ports; its log's tail says why it did not come up."""
    import os
    import sysconfig

    # Triton's Python stub links libpython: this interpreter's own, not whichever the system has
    library = f"{sysconfig.get_config_var('LIBDIR')}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    for _ in range(2):
        ports = {name: free_port() for name in ("http", "grpc", "metrics")}
        command = [str(TRITON_PYTHON), str(STAND_INS / "cosyvoice_triton.py"), *arguments]
        command += [f"--{name}-port={port}" for name, port in ports.items()]
        with open(log, "ab") as out:
            env = {**os.environ, "LD_LIBRARY_PATH": library}
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while process.poll() is None and not _triton_ready(f"http://127.0.0.1:{ports['http']}"):
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                break
            time.sleep(0.5)
        if process.poll() is None:
            return process, ports
    tail = log.read_text(errors="replace")[-2000:]
    raise AssertionError(f"the Triton server did not load its models, twice:\n{tail}")


@contextmanager
def triton_server(capacity: int | None = None, seconds_per_char: float = 0.0) -> Iterator[dict[str, str]]:
    """A real Triton server holding the stand-ins of CosyVoice's Triton models
    (``harness/servers/cosyvoice_triton.py``): ``http`` and ``grpc`` addresses, once both models load."""
    import tempfile

    arguments = [f"--seconds-per-char={seconds_per_char}"]
    arguments += [f"--capacity={capacity}"] if capacity is not None else []
    with tempfile.TemporaryDirectory() as logs:
        process, ports = _start_triton(arguments, Path(logs) / "triton.log")
        try:
            yield {"http": f"http://127.0.0.1:{ports['http']}", "grpc": f"grpc://127.0.0.1:{ports['grpc']}"}
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
