"""Any OpenAI-compatible speech server: Kokoro-FastAPI, speaches, another voxserve...

``POST /v1/audio/speech`` with ``response_format: "pcm"``, which OpenAI
defines as raw 24 kHz 16-bit mono samples, so audio streams straight through
as it arrives. ``model`` is the upstream model name; an ``api_key`` becomes
the Bearer token. ``instructions`` go only to models that follow them
(OpenAI's ``gpt-4o-mini-tts``; ``tts-1`` and ``tts-1-hd`` ignore them, and
so do servers like Kokoro-FastAPI): elsewhere they are reported as ignored
and routing prefers an engine that honours them. ``instructions = true``
says a server's other model follows them (another voxserve, say).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from pydantic import Field, SecretStr

from voxserve.engines.remote import Call, RemoteEngine, RemoteOptions, raw_pcm, remote_kind
from voxserve.values import PCM, Capabilities, SegmentRequest, voices_named


class OpenAIOptions(RemoteOptions):
    voices: list[str] = Field(default=["alloy"], min_length=1)
    sample_rate: int = Field(default=24000, gt=0, description="OpenAI's pcm is 24 kHz")
    max_segment_chars: int = Field(default=400, ge=20)
    model: str = Field(default="tts-1", description="the upstream model name")
    languages: list[str] = Field(default_factory=lambda: ["en"])
    api_key: SecretStr | None = Field(default=None, description="sent as the Bearer token")
    instructions: bool | None = Field(
        default=None,
        description="whether the model follows instructions (default: gpt-4o-mini-tts models do)",
    )


#: OpenAI's models that follow ``instructions`` (the others ignore them).
INSTRUCTED_MODELS = ("gpt-4o-mini-tts",)


def follows_instructions(options: OpenAIOptions) -> bool:
    if options.instructions is not None:
        return options.instructions
    return options.model.startswith(INSTRUCTED_MODELS)


class OpenAIEngine(RemoteEngine):
    def __init__(self, name: str, client: httpx.AsyncClient, options: OpenAIOptions) -> None:
        capabilities = Capabilities(
            languages=frozenset(options.languages),
            voices=voices_named(name, options.voices, options.languages),
            sample_rate=options.sample_rate,
            max_segment_chars=options.max_segment_chars,
            streaming=True,
            instructions=follows_instructions(options),
            # gpt-4o-mini-tts ignores speed (openapi.yaml: "Does not work with gpt-4o-mini-tts"): voxserve
            # changes the tempo itself there
            native_speed=(1.0, 1.0) if options.model.startswith(INSTRUCTED_MODELS) else (0.25, 4.0),
            whole_sentences=True,
        )
        super().__init__(name, client, capabilities)
        self._model = options.model
        key = options.api_key
        self._headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def call(self, request: SegmentRequest) -> Call:
        body: dict[str, object] = {
            "model": self._model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "pcm",
            "speed": request.speed,
        }
        if request.instructions and self.capabilities.instructions:
            body["instructions"] = request.instructions
        return Call("/v1/audio/speech", json=body, headers=self._headers)

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        return raw_pcm(response, "<i2")


KIND = remote_kind(
    "openai",
    OpenAIEngine,
    OpenAIOptions,
    "any OpenAI-compatible speech server (Kokoro-FastAPI, ...)",
)
