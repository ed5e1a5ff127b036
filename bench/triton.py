"""CosyVoice's Triton runtime through voxserve against the same calls made bare, on a real Triton server.

The stand-in models (``harness/servers/cosyvoice_triton.py``) take ``seconds_per_char`` to speak,
so what is measured is what each path adds to the model's own time:

- HTTP (a model deployed offline): a bare ``tritonclient.http`` infer, as upstream's
  ``client_http.py`` does, against voxserve's engine (the recording resampled to 16 kHz once,
  the call, the answer read); the median per call.
- gRPC (a model deployed decoupled): a bare stream, as upstream's ``client_grpc.py`` does
  (``enable_empty_final_response``), against voxserve's engine: the first chunk and the whole
  answer; medians.
"""

from __future__ import annotations

import asyncio
import queue
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from harness.instances import triton_server

from voxserve.audio.pcm import wav_bytes
from voxserve.engines import SegmentRequest
from voxserve.engines.cosyvoice import CosyVoiceOptions
from voxserve.engines.cosyvoice.triton import CosyVoiceTriton
from voxserve.engines.prompts import Prompts

TEXT = "今天天气很好，我们一起去公园散步吧。"
PROMPT_TEXT = "希望你以后能够做的比我还好呦。"


@dataclass(frozen=True)
class Timing:
    path: str
    first_ms: float
    whole_ms: float


def _inputs(module: object, reference: np.ndarray) -> list[object]:
    from tritonclient.utils import np_to_triton_dtype

    values = {
        "reference_wav": reference.reshape(1, -1),
        "reference_wav_len": np.array([[reference.size]], dtype=np.int32),
        "reference_text": np.array([[PROMPT_TEXT.encode()]], dtype=object),
        "target_text": np.array([[TEXT.encode()]], dtype=object),
    }
    tensors = []
    for name, value in values.items():
        tensor = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))  # type: ignore[attr-defined]
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    return tensors


def _bare_http(url: str, reference: np.ndarray) -> float:
    import tritonclient.http as http

    client = http.InferenceServerClient(url.split("://", 1)[1])
    started = time.perf_counter()
    client.infer("cosyvoice3", _inputs(http, reference))
    client.close()
    return time.perf_counter() - started


def _bare_grpc(url: str, reference: np.ndarray) -> tuple[float, float]:
    import tritonclient.grpc as grpc

    answers: queue.Queue[tuple[object, object]] = queue.Queue()
    client = grpc.InferenceServerClient(url.split("://", 1)[1])
    started = time.perf_counter()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    client.async_stream_infer("cosyvoice2", _inputs(grpc, reference), enable_empty_final_response=True)
    first = None
    while True:
        result, error = answers.get(timeout=30)
        assert error is None, error
        if first is None:
            first = time.perf_counter() - started
        final = result.get_response().parameters.get("triton_final_response")  # type: ignore[attr-defined]
        if final is not None and final.bool_param:
            break
    whole = time.perf_counter() - started
    client.stop_stream()
    client.close()
    return first, whole


async def _ours(engine: CosyVoiceTriton) -> tuple[float, float]:
    request = SegmentRequest(text=TEXT, language="zh", voice="xiaoyu")
    started = time.perf_counter()
    first = None
    async for _ in engine.synthesize(request):
        first = first or time.perf_counter() - started
    assert first is not None
    return first, time.perf_counter() - started


def run(rounds: int = 20, seconds_per_char: float = 0.02) -> list[Timing]:
    """Median first-audio and whole-answer times of each path, ``rounds`` calls each."""
    with tempfile.TemporaryDirectory() as temp, triton_server(seconds_per_char=seconds_per_char) as urls:
        directory = Path(temp)
        t = np.arange(5 * 16000, dtype=np.float32) / 16000
        reference = (0.3 * np.sin(2 * np.pi * 160 * t)).astype(np.float32)
        prompt = directory / "prompt.wav"
        prompt.write_bytes(wav_bytes(reference, 16000))
        voices = {"xiaoyu": {"audio": str(prompt), "text": PROMPT_TEXT}}

        def engine(protocol: str, generation: int) -> CosyVoiceTriton:
            options = CosyVoiceOptions(
                api="triton", generation=generation, voices=voices, triton_protocol=protocol
            )
            prompts = Prompts(options.voices, directory / "prompts")  # type: ignore[arg-type]
            return CosyVoiceTriton("cosy", urls[protocol], options, prompts, read_timeout=30)

        async def measure(engine: CosyVoiceTriton) -> list[tuple[float, float]]:
            await engine.load()
            await _ours(engine)  # the recording decoded once, connections made
            timings = [await _ours(engine) for _ in range(rounds)]
            await engine.close()
            return timings

        http_bare = [_bare_http(urls["http"], reference) for _ in range(rounds + 1)][1:]
        grpc_bare = [_bare_grpc(urls["grpc"], reference) for _ in range(rounds + 1)][1:]
        http_ours = asyncio.run(measure(engine("http", 3)))
        grpc_ours = asyncio.run(measure(engine("grpc", 2)))

    def median(values: list[float]) -> float:
        return statistics.median(values) * 1000

    return [
        Timing("HTTP, bare tritonclient", median(http_bare), median(http_bare)),
        Timing(
            "HTTP, voxserve's engine", median([f for f, _ in http_ours]), median([w for _, w in http_ours])
        ),
        Timing(
            "gRPC stream, bare tritonclient",
            median([f for f, _ in grpc_bare]),
            median([w for _, w in grpc_bare]),
        ),
        Timing(
            "gRPC stream, voxserve's engine",
            median([f for f, _ in grpc_ours]),
            median([w for _, w in grpc_ours]),
        ),
    ]
