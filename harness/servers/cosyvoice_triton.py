"""A real NVIDIA Triton server (PyTriton's, 2.51) holding stand-ins for upstream CosyVoice's Triton models.

Follows FunAudioLLM/CosyVoice@ace7c47f41bbd303aa6bf1ea80e6f9fbd595cd40, ``runtime/triton_trtllm``:

- ``model_repo_cosyvoice3/cosyvoice3/config.pbtxt`` and ``model_repo/cosyvoice2/config.pbtxt``:
  inputs ``reference_wav`` (FP32 [-1], optional), ``reference_wav_len`` (INT32 [1], optional),
  ``reference_text`` (BYTES [1], optional), ``target_text`` (BYTES [1]); output ``waveform``
  (FP32 [-1]); ``max_batch_size`` above 0, so every tensor has a batch dimension.
- ``model_repo_cosyvoice3/cosyvoice3/1/model.py``: ``_prepare_prompt`` writes ``You are a
  helpful assistant.<|endofprompt|>`` before a reference text that lacks it and reads
  ``reference_wav`` with no check that it came (CosyVoice3 without a recording fails:
  "'NoneType' object has no attribute 'as_numpy'"); errors go back as a ``TritonError``
  (offline: the request's error; decoupled: an error response, then the final flag); audio at
  24 kHz, streamed chunk by chunk when the model is decoupled.
- ``model_repo/cosyvoice2/1/model.py``: without a recording, the model's default speaker.

One server holds ``cosyvoice3`` (offline, for HTTP) and ``cosyvoice2`` (decoupled, for gRPC
streaming), as two deployments of upstream's would. ``--capacity N`` fails requests beyond N at
once with "CUDA out of memory", ``--seconds-per-char`` paces the audio. It runs in its own
environment (``make test`` puts ``nvidia-pytriton`` in ``.venv/tools/triton``), needing only
numpy and pytriton, with the interpreter's own ``libpython`` on ``LD_LIBRARY_PATH`` (Triton's
Python stub links against one).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

OUTPUT_RATE = 24000
SYSTEM = "You are a helpful assistant.<|endofprompt|>"
CHUNK_SECONDS = 0.2
INSTANCES = 2  # model instances: requests run two at a time, so a capacity of 1 can be exceeded


class Load:
    """Requests in flight, and what the server does beyond its capacity."""

    def __init__(self, capacity: int | None, seconds_per_char: float) -> None:
        self.capacity = capacity
        self.seconds_per_char = seconds_per_char
        self.in_flight = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            if self.capacity is not None and self.in_flight > self.capacity:
                self.in_flight -= 1
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def text_of(request: Any, name: str) -> str | None:
    value = request.data.get(name)
    return None if value is None else bytes(value.reshape(-1)[0]).decode("utf-8")


def prepared(request: Any, generation: int) -> tuple[str, str]:
    """``_prepare_prompt``: the reference text as the model uses it, and the target text."""
    reference_text = text_of(request, "reference_text") or ""
    wav = request.data.get("reference_wav")
    if generation == 3:
        if "<|endofprompt|>" not in reference_text:
            reference_text = SYSTEM + reference_text
        if wav is None:
            raise AttributeError("'NoneType' object has no attribute 'as_numpy'")
    target = text_of(request, "target_text")
    assert target is not None, "target_text is required"
    return reference_text, target


def speech(text: str) -> np.ndarray:
    """A tone whose length follows the text (0.06 s a character, as the other stand-ins)."""
    seconds = max(0.2, len(text) * 0.06)
    t = np.arange(int(OUTPUT_RATE * seconds), dtype=np.float32) / OUTPUT_RATE
    return (0.3 * np.sin(2 * np.pi * (180 + len(text) % 120) * t)).astype(np.float32)


def offline(load: Load, generation: int) -> Any:
    """A model deployed with ``decoupled_mode: False``: one whole answer per request."""

    def infer(requests: list[Any]) -> list[dict[str, np.ndarray]]:
        answers = []
        for request in requests:
            _, target = prepared(request, generation)
            load.enter()
            try:
                time.sleep(load.seconds_per_char * len(target))
                answers.append({"waveform": speech(target).reshape(1, -1)})
            finally:
                load.leave()
        return answers

    return infer


def decoupled(load: Load, generation: int) -> Any:
    """A model deployed decoupled: the audio in chunks as they are made (the final flag follows)."""

    def infer(requests: list[Any]) -> Iterator[list[dict[str, np.ndarray]]]:
        for request in requests:
            _, target = prepared(request, generation)
            load.enter()
            try:
                audio = speech(target)
                step = int(OUTPUT_RATE * CHUNK_SECONDS)
                chunks = range(0, audio.size, step)
                for start in chunks:
                    time.sleep(load.seconds_per_char * len(target) / len(chunks))
                    yield [{"waveform": audio[start : start + step].reshape(1, -1)}]
            finally:
                load.leave()

    return infer


INPUTS = [
    Tensor(name="reference_wav", dtype=np.float32, shape=(-1,), optional=True),
    Tensor(name="reference_wav_len", dtype=np.int32, shape=(1,), optional=True),
    Tensor(name="reference_text", dtype=bytes, shape=(1,), optional=True),
    Tensor(name="target_text", dtype=bytes, shape=(1,)),
]
OUTPUTS = [Tensor(name="waveform", dtype=np.float32, shape=(-1,))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=None)
    parser.add_argument("--seconds-per-char", type=float, default=0.0)
    args = parser.parse_args()
    load = Load(args.capacity, args.seconds_per_char)
    config = TritonConfig(http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port)
    batching = DynamicBatcher(max_queue_delay_microseconds=0)
    with Triton(config=config) as triton:
        triton.bind(
            model_name="cosyvoice3",
            infer_func=[offline(load, 3)] * INSTANCES,
            inputs=INPUTS,
            outputs=OUTPUTS,
            config=ModelConfig(max_batch_size=1, batcher=batching),
            strict=False,
        )
        triton.bind(
            model_name="cosyvoice2",
            infer_func=[decoupled(load, 2)] * INSTANCES,
            inputs=INPUTS,
            outputs=OUTPUTS,
            config=ModelConfig(max_batch_size=1, batcher=batching, decoupled=True),
            strict=False,
        )
        print("serving", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
