"""CosyVoice, as its servers really speak.

``api = "runtime"`` (default) is CosyVoice's FastAPI runtime
(``runtime/python/fastapi/server.py``): form fields, and the audio streamed
back as raw samples with no header — int16 from ``/inference_*``, float32
from the ``/stream/inference_*`` variants — at the model's sample rate
(22050 Hz for CosyVoice-300M, 24000 Hz for CosyVoice2/3; set ``sample_rate``).
A voice is a speaker id (``spk_id``); ``instructions`` go to
``/inference_instruct`` as ``instruct_text``.

``api = "tts"`` is the ``POST /tts`` form API of CosyVoice3 web deployments
(``text``, ``seed``, ``task_id``), which answers with a WAV file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

from voxserve.engines.base import PCM, Capabilities, SegmentRequest, voices_named
from voxserve.engines.remote import Call, RemoteEngine, raw_pcm, whole_file

DEFAULT_LANGUAGES = ("zh", "en", "ja")


class CosyVoiceEngine(RemoteEngine):
    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        voices: Sequence[str] = ("中文女",),
        sample_rate: int = 22050,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        api: str = "runtime",
        stream: bool = False,
        max_segment_chars: int = 200,
    ) -> None:
        if api not in ("runtime", "tts"):
            raise ValueError(f"cosyvoice api must be 'runtime' or 'tts', got {api!r}")
        capabilities = Capabilities(
            languages=frozenset(languages),
            voices=voices_named(name, voices, languages),
            sample_rate=sample_rate,
            max_segment_chars=max_segment_chars,
            streaming=True,
            instructions=api == "runtime",
            seeded=api == "tts",  # the runtime draws its own random seed per request
        )
        super().__init__(name, client, capabilities)
        self._api = api
        self._stream = stream

    def call(self, request: SegmentRequest) -> Call:
        if self._api == "tts":
            data = {"text": request.text}
            if request.seed is not None:
                data["seed"] = str(request.seed)
            return Call("/tts", data=data)
        prefix = "/stream" if self._stream else ""
        if request.instructions:
            fields = {
                "tts_text": request.text,
                "spk_id": request.voice,
                "instruct_text": request.instructions,
            }
            return Call(f"{prefix}/inference_instruct", data=fields)
        return Call(f"{prefix}/inference_sft", data={"tts_text": request.text, "spk_id": request.voice})

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        if self._api == "tts":
            return whole_file(response)
        return raw_pcm(response, "<f4" if self._stream else "<i2")
