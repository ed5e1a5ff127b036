"""Probes the hostile-input and pool tests share with the benchmarks: a long silent upload, a
process's memory, and how long a pool's requests wait."""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import numpy as np

from voxserve.routing import Instance, Pool


def silent_flac(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        block = np.zeros((1, rate * 10), np.int16)
        for _ in range(int(seconds / 10)):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def record_waits(pool: Pool) -> list[float]:
    """The seconds each of the pool's requests waits for an instance, from now on."""
    waits: list[float] = []
    acquire = pool._acquire

    async def timed(*args: object, **kwargs: object) -> Instance:
        started = time.monotonic()
        instance = await acquire(*args, **kwargs)  # type: ignore[arg-type]
        waits.append(time.monotonic() - started)
        return instance

    pool._acquire = timed  # type: ignore[method-assign]
    return waits
