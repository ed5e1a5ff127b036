"""The SDK ships alone: ``voxserve-client`` (clients/python) builds from the same sources, installs in
a fresh environment with httpx and nothing of the server, and imports without loading any of it."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What the server needs and the SDK must not pull in.
SERVER_ONLY = {"onnxruntime", "av", "numpy", "kokoro-onnx", "fastapi", "pydantic", "hibari-tts"}


def test_the_sdk_installs_alone_without_the_server(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels)]
    subprocess.run([*build, str(ROOT / "clients" / "python")], check=True)
    (wheel,) = wheels.glob("voxserve_client-*.whl")
    assert wheel.stat().st_size < 40_000, "the SDK's wheel is its own code, a few dozen kB"
    names = zipfile.ZipFile(wheel).namelist()
    assert all(name.startswith(("voxserve/client/", "voxserve_client-")) for name in names), names

    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = str(environment / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True)
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    installed = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert "httpx" in installed and not installed & SERVER_ONLY, installed

    probe = (
        "import sys, voxserve.client as c; "
        "assert not {'onnxruntime', 'av', 'numpy'} & set(sys.modules); "
        "print(c.Client.__name__, c.APIError.__name__)"
    )
    ran = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["Client", "APIError"]
