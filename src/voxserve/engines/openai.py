"""Any OpenAI-compatible speech server: Kokoro-FastAPI, speaches, another voxserve...

``POST /v1/audio/speech`` with ``response_format: "pcm"``, which OpenAI
defines as raw 24 kHz 16-bit mono samples, so audio streams straight through
as it arrives. ``model`` is the upstream model name; ``instructions`` pass
through; an ``api_key`` becomes the Bearer token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

from voxserve.engines.base import PCM, Capabilities, SegmentRequest, voices_named
from voxserve.engines.remote import Call, RemoteEngine, raw_pcm


class OpenAIEngine(RemoteEngine):
    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        voices: Sequence[str] = ("alloy",),
        model: str = "tts-1",
        languages: Sequence[str] = ("en",),
        api_key: str | None = None,
        sample_rate: int = 24000,
        max_segment_chars: int = 400,
    ) -> None:
        capabilities = Capabilities(
            languages=frozenset(languages),
            voices=voices_named(name, voices, languages),
            sample_rate=sample_rate,
            max_segment_chars=max_segment_chars,
            streaming=True,
            instructions=True,
            native_speed=(0.25, 4.0),
        )
        super().__init__(name, client, capabilities)
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def call(self, request: SegmentRequest) -> Call:
        body: dict[str, object] = {
            "model": self._model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "pcm",
            "speed": request.speed,
        }
        if request.instructions:
            body["instructions"] = request.instructions
        return Call("/v1/audio/speech", json=body, headers=self._headers)

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        return raw_pcm(response, "<i2")
