"""fish-speech (OpenAudio) through its HTTP API server (``tools/api_server.py``).

Checked against fishaudio/fish-speech@3dd1f85c402ee6f0a17c2971d3b0dd8d881ca139
(``tools/server/views.py``, ``tools/server/api_utils.py``,
``fish_speech/utils/schema.py``): ``POST /v1/tts`` with a ``ServeTTSRequest``
(JSON here; the server also reads msgpack): ``text``, ``format: "wav"``,
``streaming: true``, ``seed``, ``use_memory_cache: "on"``, and the voice as
either ``reference_id`` (a reference stored on the server under
``references/<id>/``, added with its ``/v1/references/add``) or inline
``references`` (each ``{"audio": base64, "text": transcript}``: a configured
prompt voice, or a cloned library voice with its transcript). The
server's sampling knobs (``chunk_length``, ``temperature``, ``top_p``,
``repetition_penalty``) go only when configured.

A streamed answer is raw 16-bit mono samples at the decoder's rate (44100 Hz
for ``modded_dac_vq``) with no header, although its type says ``audio/wav``
(the engine's WAV header is an array its server drops); a header that a later
server does send is skipped. Everything the model does runs after the 200,
so a failure stops the body short: :class:`~voxserve.errors.EngineFailed`,
told apart from overload by the pool. An unknown ``reference_id`` is not an
error there (it speaks in a voice of its own), so voxserve sends only the
ids it is configured with. ``api_key`` is the server's ``--api-key``, sent as
the Bearer token; ``GET /v1/health`` is its health route.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

from voxserve.client.errors import unreachable
from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions, Servers
from voxserve.engines.prompts import IdsOrPrompts, Prompts, PromptVoice, configured_prompts
from voxserve.engines.remote import Call, PcmStream, RemoteEngine, default_client
from voxserve.values import PCM, Capabilities, SegmentRequest, voices_named

UPSTREAM = "fishaudio/fish-speech@3dd1f85c402ee6f0a17c2971d3b0dd8d881ca139"
WAV_HEADER = 44


#: What its server accepts as a reference id (``ReferenceLoader._validate_id``); another breaks every answer.
REFERENCE_ID = re.compile(r"^[a-zA-Z0-9\-_ ]{1,255}$")


class FishSpeechOptions(EngineOptions):
    voices: IdsOrPrompts = Field(
        description="reference ids stored on the server, or voice id → recording and transcript (inline)",
    )
    sample_rate: int = Field(default=44100, gt=0, description="its decoder's (modded_dac_vq: 44100)")
    languages: list[str] = Field(default_factory=lambda: ["zh", "en", "ja", "ko", "fr", "de", "es", "ar"])
    max_segment_chars: int = Field(default=300, ge=20)
    api_key: SecretStr | None = Field(default=None, description="the server's --api-key (a Bearer token)")
    chunk_length: int | None = Field(default=None, ge=100, le=1000)
    temperature: float | None = Field(default=None, ge=0.1, le=1.0)
    top_p: float | None = Field(default=None, ge=0.1, le=1.0)
    repetition_penalty: float | None = Field(default=None, ge=0.9, le=2.0)

    @field_validator("voices")
    @classmethod
    def _ids_it_accepts(
        cls, voices: list[str] | dict[str, PromptVoice]
    ) -> list[str] | dict[str, PromptVoice]:
        bad = [voice for voice in voices if isinstance(voices, list) and not REFERENCE_ID.match(voice)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))}: fish-speech names references with letters, digits, '-', '_' "
                "and spaces only (255 at most)"
            )
        return voices


async def raw_wav_stream(response: httpx.Response) -> AsyncIterator[PCM]:
    """Headerless s16le samples, as the server sends them; a RIFF header, if one comes, skipped."""
    stream = PcmStream("<i2")
    head = b""
    async for data in response.aiter_bytes():
        if len(head) < WAV_HEADER:  # hold the first bytes until it is clear whether they are a header
            head += data
            if len(head) < WAV_HEADER:
                continue
            data, head = (head[WAV_HEADER:] if head.startswith(b"RIFF") else head), head[:WAV_HEADER]
        chunk = stream.feed(data)
        if chunk is not None and chunk.size:
            yield chunk
    if 0 < len(head) < WAV_HEADER:  # a short answer: all of it is samples
        chunk = stream.feed(head)
        if chunk is not None and chunk.size:
            yield chunk


class FishSpeechEngine(RemoteEngine):
    """One fish-speech API server."""

    def __init__(
        self, name: str, client: httpx.AsyncClient, options: FishSpeechOptions, prompts: Prompts | None = None
    ) -> None:
        capabilities = Capabilities(
            languages=frozenset(options.languages),
            voices=voices_named(name, list(options.voices), options.languages),
            sample_rate=options.sample_rate,
            max_segment_chars=options.max_segment_chars,
            streaming=True,
            cloning=True,
            clone_needs_transcript=True,  # each reference is its audio and what it says
            seeded=True,
            whole_sentences=True,
        )
        super().__init__(name, client, capabilities)
        self._stored = isinstance(options.voices, list)
        self._prompts = prompts or Prompts({}, Path())
        self._tuning = options.model_dump(
            include={"chunk_length", "temperature", "top_p", "repetition_penalty"}, exclude_none=True
        )
        key = options.api_key
        self._headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    async def load(self) -> None:
        await self._prompts.load()
        await super().load()

    async def prepare(self, request: SegmentRequest) -> None:
        if request.reference is not None or not self._stored:
            await self._prompts.read(self._prompts.of(request))

    def call(self, request: SegmentRequest) -> Call:
        body: dict[str, Any] = {
            "text": request.text,
            "format": "wav",
            "streaming": True,
            "use_memory_cache": "on",  # the server keeps each inline reference's codes by its hash
            **self._tuning,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.reference is None and self._stored:
            body["reference_id"] = request.voice
        else:
            prompt = self._prompts.of(request)
            audio = base64.b64encode(self._prompts.recording(prompt)).decode("ascii")
            body["references"] = [{"audio": audio, "text": prompt.text}]
        return Call("/v1/tts", json=body, headers=self._headers)

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        return raw_wav_stream(response)

    async def alive(self, timeout: float) -> str | None:
        """fish-speech has a health route, behind its key as every other."""
        try:
            response = await self._client.get("/v1/health", headers=self._headers, timeout=timeout)
        except httpx.HTTPError as exc:
            return unreachable(exc)
        return None if response.status_code == 200 else f"GET /v1/health answered {response.status_code}"


def _build(config: EngineSettings, options: FishSpeechOptions, context: BuildContext) -> Servers:
    prompts = configured_prompts(options.voices, context, config)

    def make(url: str) -> Engine:
        return FishSpeechEngine(config.name, default_client(url, config.read_timeout), options, prompts)

    return Servers(make)


KIND = EngineKind(
    "fishspeech",
    FishSpeechOptions,
    _build,
    "fish-speech's HTTP API server (tools/api_server.py)",
    needs_url=True,
)
