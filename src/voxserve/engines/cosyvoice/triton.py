"""CosyVoice2 and 3 through upstream's NVIDIA Triton runtime (``runtime/triton_trtllm``).

Upstream's model repository (``model_repo/cosyvoice2``, ``model_repo_cosyvoice3/cosyvoice3``
at :data:`~.options.UPSTREAM`) takes a voice as its recording and transcript, and answers
24 kHz audio:

- inputs ``reference_wav`` (FP32 samples at 16 kHz, shape [1, n]),
  ``reference_wav_len`` (INT32 [1, 1]), ``reference_text`` and ``target_text``
  (BYTES [1, 1]); CosyVoice3's model writes ``You are a helpful
  assistant.<|endofprompt|>`` before a transcript that lacks it, itself;
- output ``waveform`` (FP32, [1, n]).

``triton_protocol = "http"`` (port 8000) asks a model deployed with
``decoupled_mode: False`` for the whole answer (KServe v2 over HTTP, as upstream's
``client_http.py``). ``"grpc"`` (port 8001) streams from a model deployed
decoupled, chunk by chunk as its vocoder finishes them (upstream's
``client_grpc.py``: one stream, ``enable_empty_final_response`` to learn the
end); that is where upstream's first-chunk latency comes from. HTTP does not
serve a decoupled model (Triton answers 501), so the protocol follows the
deployment.

Failures: unreachable → ``EngineUnavailable``; the model's error (its
``TritonError``) → ``EngineOverloaded`` when it ran out of memory, else
``EngineFailed`` (this input, e.g. CosyVoice3 without a recording); a stream
that ends without its final response → ``EngineFailed`` (broke off).
``tritonclient``'s own calls that block (the gRPC stream's start and stop) run
in threads; its responses reach the loop through a queue.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpc_aio
import tritonclient.http.aio as http_aio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from voxserve.client.errors import unreachable
from voxserve.engines.base import EngineBase
from voxserve.engines.cosyvoice.options import CosyVoiceOptions, capabilities
from voxserve.engines.decode import decode_audio
from voxserve.engines.prompts import Prompts
from voxserve.engines.remote import ERROR_TAIL, failure
from voxserve.errors import EngineFailed, EngineTimeout, EngineUnavailable
from voxserve.values import PCM, SegmentRequest

log = logging.getLogger(__name__)
#: Upstream's Triton models read their reference at this rate ("hard coding in server").
REFERENCE_RATE = 16000
#: Recordings kept decoded at 16 kHz (a voice is sent with every segment).
DECODED_PROMPTS = 32
#: What a server that cannot be reached says, itself or through the model (CosyVoice3's model
#: reaches its LLM server over HTTP, and passes httpx's words on).
UNREACHABLE = re.compile(r"connection refused|failed to connect|connection attempts failed", re.IGNORECASE)


def _address(url: str) -> str:
    """tritonclient wants ``host:port``, no scheme."""
    return url.split("://", 1)[-1].rstrip("/")


def _decoupled(config: Any) -> bool:
    """Whether a model's configuration (HTTP: a dict; gRPC: a protobuf answer) says it is decoupled."""
    if isinstance(config, dict):
        return bool(config.get("model_transaction_policy", {}).get("decoupled", False))
    return bool(config.config.model_transaction_policy.decoupled)


def _tensor(module: Any, name: str, value: np.ndarray) -> Any:
    tensor = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
    tensor.set_data_from_numpy(value)
    return tensor


class CosyVoiceTriton(EngineBase):
    """One Triton server holding upstream's ``cosyvoice2`` or ``cosyvoice3`` model."""

    def __init__(
        self, name: str, url: str, options: CosyVoiceOptions, prompts: Prompts, read_timeout: float
    ) -> None:
        super().__init__(name, capabilities(name, options))
        generation = options.model_generation
        self.url = url
        self._address = _address(url)
        self._model = options.triton_model or f"cosyvoice{generation.number}"
        self._streaming = options.triton_protocol == "grpc"
        self._prompts = prompts
        self._timeout = read_timeout
        self._decoded: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._aio: Any = None  # one asyncio client (HTTP, or gRPC for health) for the instance's life

    async def load(self) -> None:
        await self._prompts.load()
        await super().load()

    async def close(self) -> None:
        await super().close()
        if self._aio is not None:
            await self._aio.close()
            self._aio = None

    async def health(self, timeout: float = 2.0) -> str | None:
        """None when the server says the model is ready (loaded, not still converting its engines),
        and is deployed for this protocol: decoupled for gRPC streaming, not for HTTP."""
        try:
            if not await asyncio.wait_for(self._client().is_model_ready(self._model), timeout):
                return f"model {self._model!r} is not ready on the server (loading, or not deployed)"
            config = await asyncio.wait_for(self._client().get_model_config(self._model), timeout)
        except Exception as exc:  # unreachable, refused, timed out: not ready, whatever the cause
            return unreachable(exc)
        decoupled = _decoupled(config)
        if decoupled != self._streaming:
            return (
                f"model {self._model!r} is deployed {'decoupled' if decoupled else 'offline'}: set "
                f"triton_protocol = {'grpc' if decoupled else 'http'!r} (or deploy it with decoupled_mode: "
                f"{not decoupled})"
            )
        return None

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        inputs = await self._inputs(request)
        if self._streaming:
            async for chunk in self._stream(inputs):
                yield chunk
            return
        yield await self._whole(inputs)

    async def _inputs(self, request: SegmentRequest) -> dict[str, np.ndarray]:
        """Upstream's four inputs: the voice's recording at 16 kHz, its length and text, the text."""
        prompt = self._prompts.of(request)
        samples = await self._reference(prompt.audio)
        return {
            "reference_wav": samples.reshape(1, -1),
            "reference_wav_len": np.array([[samples.size]], dtype=np.int32),
            "reference_text": np.array([[prompt.text.encode()]], dtype=object),
            "target_text": np.array([[request.text.encode()]], dtype=object),
        }

    async def _reference(self, path: Path) -> np.ndarray:
        if path not in self._decoded:
            self._decoded[path], _ = await asyncio.to_thread(decode_audio, path, REFERENCE_RATE)
            while len(self._decoded) > DECODED_PROMPTS:
                self._decoded.popitem(last=False)
        self._decoded.move_to_end(path)
        return self._decoded[path]  # decode_audio's float32, as the model's FP32 input wants

    def _client(self) -> Any:
        """The instance's asyncio client, made on first use (its connections are kept alive)."""
        if self._aio is None:
            module = grpc_aio if self._streaming else http_aio
            self._aio = module.InferenceServerClient(self._address)
        return self._aio

    async def _whole(self, inputs: dict[str, np.ndarray]) -> PCM:
        tensors = [_tensor(http_aio, name, value) for name, value in inputs.items()]
        wanted = [http_aio.InferRequestedOutput("waveform", binary_data=True)]
        try:
            result = await asyncio.wait_for(
                self._client().infer(self._model, tensors, outputs=wanted, request_id=uuid.uuid4().hex),
                self._timeout,
            )
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except InferenceServerException as exc:
            raise self._failure(exc, started=False) from exc
        except Exception as exc:  # aiohttp's own: refused, reset
            raise EngineUnavailable(f"engine {self.name!r} at {self.url} is unreachable: {exc!r}") from exc
        return np.asarray(result.as_numpy("waveform"), dtype=np.float32).reshape(-1)

    async def _stream(self, inputs: dict[str, np.ndarray]) -> AsyncIterator[PCM]:
        """A decoupled model's responses, each a chunk of audio, until its empty final response."""
        loop = asyncio.get_running_loop()
        answers: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()

        def deliver(result: Any, error: Any) -> None:  # on tritonclient's stream thread
            loop.call_soon_threadsafe(answers.put_nowait, (result, error))

        client = grpcclient.InferenceServerClient(self._address)
        tensors = [_tensor(grpcclient, name, value) for name, value in inputs.items()]
        started = False
        try:
            await asyncio.to_thread(partial(client.start_stream, callback=deliver))
            client.async_stream_infer(
                self._model, tensors, request_id=uuid.uuid4().hex, enable_empty_final_response=True
            )
            while True:
                try:
                    result, error = await asyncio.wait_for(answers.get(), self._timeout)
                except TimeoutError as exc:
                    raise self._timed_out() from exc
                if error is not None:
                    raise self._failure(error, started=started)
                waveform = result.as_numpy("waveform")
                if waveform is not None and waveform.size:
                    started = True
                    yield np.asarray(waveform, dtype=np.float32).reshape(-1)
                final = result.get_response().parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    return
        finally:
            await asyncio.to_thread(self._end_stream, client)

    @staticmethod
    def _end_stream(client: Any) -> None:
        """Stop the stream (cancelling what still runs on the server: the client may have gone)."""
        try:
            client.stop_stream(cancel_requests=True)
        finally:
            client.close()

    def _timed_out(self) -> EngineTimeout:
        return EngineTimeout(f"engine {self.name!r} at {self.url} said nothing for {self._timeout:g} s")

    def _failure(self, exc: InferenceServerException, *, started: bool) -> Exception:
        """A Triton error as the error tree has it (see the module's docstring)."""
        words = (exc.message() or str(exc)).strip()
        status = str(exc.status() or "")
        if "UNAVAILABLE" in status or UNREACHABLE.search(words):
            tail = words[-ERROR_TAIL:]
            if not started:
                return EngineUnavailable(f"engine {self.name!r} at {self.url} is unreachable: {tail}")
            message = f"engine {self.name!r} at {self.url} closed the answer before it finished ({tail})"
            return EngineFailed(message, broke_off=True)
        return failure(self.name, f"at {self.url} failed", words, answered=True)
