"""CosyVoice's FastAPI runtime (``runtime/python/fastapi/server.py``), and the ``/tts`` wrapper around it.

The runtime takes form fields and streams raw int16 samples back with no
header, a piece per sentence the model finishes, at the model's rate (the
generation's: 22050 or 24000 Hz). Which route a segment goes to:

- a preset speaker (CosyVoice 1): ``/inference_sft`` (``spk_id``), or
  ``/inference_instruct`` with instructions (CosyVoice-300M-Instruct only);
- a recording (a configured prompt voice, or a cloned library voice), sent as
  the ``prompt_wav`` upload: ``/inference_instruct2`` with instructions (2
  and 3), ``/inference_zero_shot`` with its transcript as ``prompt_text``,
  ``/inference_cross_lingual`` without one. Texts are written as the
  generation wants them (:class:`~.options.Generation`).

Upstream's server fails inside its response generator, after the 200 and
its headers: the body just stops. voxserve reads that as
:class:`~voxserve.errors.EngineFailed`, which the pool tells apart from an
overloaded GPU (:mod:`voxserve.routing.pool`).

``api = "tts"`` is not upstream's: it is the ``POST /tts`` form wrapper that
deployments put around CosyVoice3 (``text``, ``seed``,
``task_id``, ``audio_path``), answering with a WAV file. ``audio_path``
names a file on the engine's machine, so cloning there needs
``reference_root``: where the engine sees voxserve's voice library directory
(a shared volume).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from voxserve.engines.cosyvoice.options import CosyVoiceOptions, capabilities
from voxserve.engines.prompts import Prompt, Prompts
from voxserve.engines.remote import Call, RemoteEngine, raw_pcm, whole_file
from voxserve.values import PCM, SegmentRequest


class CosyVoiceRuntime(RemoteEngine):
    """One server running upstream's FastAPI runtime (or the ``/tts`` form wrapper)."""

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        options: CosyVoiceOptions,
        prompts: Prompts | None = None,
    ) -> None:
        """``prompts``: the configured prompt voices, converted (a table of preset speakers needs none)."""
        super().__init__(name, client, capabilities(name, options))
        self._api = options.api
        self._generation = options.model_generation
        self._presets = isinstance(options.voices, list)
        self._reference_root = options.reference_root
        self._prompts = prompts or Prompts({}, Path())

    async def load(self) -> None:
        await self._prompts.load()
        await super().load()

    async def prepare(self, request: SegmentRequest) -> None:
        prompt = self._prompt(request) if self._api != "tts" else None
        if prompt is not None:
            await self._prompts.read(prompt)

    def call(self, request: SegmentRequest) -> Call:
        if self._api == "tts":
            return self._wrapper_call(request)
        generation = self._generation
        prompt = self._prompt(request)
        if prompt is None:
            if request.instructions:
                fields = {
                    "tts_text": request.text,
                    "spk_id": request.voice,
                    "instruct_text": generation.instruct_text(request.instructions),
                }
                return Call("/inference_instruct", data=fields)
            return Call("/inference_sft", data={"tts_text": request.text, "spk_id": request.voice})
        files = {"prompt_wav": (prompt.audio.name, self._prompts.recording(prompt), "audio/wav")}
        if request.instructions:
            fields = {
                "tts_text": request.text,
                "instruct_text": generation.instruct_text(request.instructions),
            }
            return Call("/inference_instruct2", data=fields, files=files)
        if prompt.text:
            fields = {"tts_text": request.text, "prompt_text": generation.prompt_text(prompt.text)}
            return Call("/inference_zero_shot", data=fields, files=files)
        text = generation.cross_lingual_text(request.text)
        return Call("/inference_cross_lingual", data={"tts_text": text}, files=files)

    def _prompt(self, request: SegmentRequest) -> Prompt | None:
        """The recording the voice is (and its transcript), or None for a preset speaker."""
        if request.reference is None and self._presets:
            return None
        return self._prompts.of(request)

    def _wrapper_call(self, request: SegmentRequest) -> Call:
        data = {"text": request.text}
        if request.seed is not None:
            data["seed"] = str(request.seed)
        if request.reference is not None and self._reference_root is not None:
            data["audio_path"] = f"{self._reference_root.rstrip('/')}/{request.reference.path.name}"
        return Call("/tts", data=data)

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        if self._api == "tts":
            return whole_file(response, self.name, self.capabilities.sample_rate)
        return raw_pcm(response, "<i2")
