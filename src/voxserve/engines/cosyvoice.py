"""CosyVoice, as its servers really speak.

``api = "runtime"`` (default) is CosyVoice's FastAPI runtime
(``runtime/python/fastapi/server.py``, checked against
FunAudioLLM/CosyVoice@ace7c47f41bbd303aa6bf1ea80e6f9fbd595cd40): form fields,
and the audio streamed back as raw int16 samples with no header, a piece per
sentence the model finishes, at the model's sample rate (22050 Hz for
CosyVoice-300M, 24000 Hz for CosyVoice2/3; set ``sample_rate``).
A voice is a speaker id (``spk_id``); ``instructions`` go to
``/inference_instruct`` as ``instruct_text``. A cloned voice goes as the
``prompt_wav`` upload: to ``/inference_zero_shot`` with its transcript
(``prompt_text``), to ``/inference_cross_lingual`` when it has none, and to
``/inference_instruct2`` (with ``instruct_text``) when instructions come too.

``api = "tts"`` is not upstream's: it is the ``POST /tts`` form wrapper that
seed 001's deployments put around CosyVoice3 (``text``, ``seed``,
``task_id``, ``audio_path``), answering with a WAV file. ``audio_path``
names a file on the engine's machine, so cloning there needs
``reference_root``: where the engine sees voxserve's voice library directory
(a shared volume).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import httpx
from pydantic import Field

from voxserve.engines.base import PCM, Capabilities, Reference, SegmentRequest, voices_named
from voxserve.engines.remote import Call, RemoteEngine, RemoteOptions, raw_pcm, remote_kind, whole_file


class CosyVoiceOptions(RemoteOptions):
    voices: list[str] = Field(default=["中文女"], min_length=1, description="speaker ids (spk_id)")
    sample_rate: int = Field(default=22050, gt=0, description="22050 for CosyVoice-300M, 24000 for 2 and 3")
    languages: list[str] = Field(default_factory=lambda: ["zh", "en", "ja"])
    api: Literal["runtime", "tts"] = "runtime"
    reference_root: str | None = Field(
        default=None, description="api = 'tts': where the server sees voxserve's voice library"
    )


class CosyVoiceEngine(RemoteEngine):
    def __init__(self, name: str, client: httpx.AsyncClient, options: CosyVoiceOptions) -> None:
        api, languages = options.api, options.languages
        capabilities = Capabilities(
            languages=frozenset(languages),
            voices=voices_named(name, options.voices, languages),
            sample_rate=options.sample_rate,
            max_segment_chars=options.max_segment_chars,
            streaming=True,
            instructions=api == "runtime",
            seeded=api == "tts",  # the runtime draws its own random seed per request
            cloning=api == "runtime" or options.reference_root is not None,
            markup=True,  # CosyVoice3's front end reads [h][ǎo] pinyin and [M][AY0] ARPAbet itself
        )
        super().__init__(name, client, capabilities)
        self._api = api
        self._reference_root = options.reference_root

    def call(self, request: SegmentRequest) -> Call:
        if self._api == "tts":
            data = {"text": request.text}
            if request.seed is not None:
                data["seed"] = str(request.seed)
            if request.reference is not None and self._reference_root is not None:
                data["audio_path"] = f"{self._reference_root.rstrip('/')}/{request.reference.path.name}"
            return Call("/tts", data=data)
        if request.reference is not None:
            return self._clone(request, request.reference)
        if request.instructions:
            fields = {
                "tts_text": request.text,
                "spk_id": request.voice,
                "instruct_text": request.instructions,
            }
            return Call("/inference_instruct", data=fields)
        return Call("/inference_sft", data={"tts_text": request.text, "spk_id": request.voice})

    @staticmethod
    def _clone(request: SegmentRequest, reference: Reference) -> Call:
        files = {"prompt_wav": (reference.path.name, reference.path.read_bytes(), "audio/wav")}
        if request.instructions:
            fields = {"tts_text": request.text, "instruct_text": request.instructions}
            return Call("/inference_instruct2", data=fields, files=files)
        if reference.transcript:
            fields = {"tts_text": request.text, "prompt_text": reference.transcript}
            return Call("/inference_zero_shot", data=fields, files=files)
        return Call("/inference_cross_lingual", data={"tts_text": request.text}, files=files)

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        if self._api == "tts":
            return whole_file(response, self.name, self.capabilities.sample_rate)
        return raw_pcm(response, "<i2")


KIND = remote_kind(
    "cosyvoice",
    CosyVoiceEngine,
    CosyVoiceOptions,
    "CosyVoice's FastAPI runtime, or the /tts form of its web demos",
)
