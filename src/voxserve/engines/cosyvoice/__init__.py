"""CosyVoice (FunAudioLLM/CosyVoice) by generation, through the interfaces upstream ships.

- ``api = "runtime"`` (default): its FastAPI server, ``runtime/python/fastapi/server.py``
  (see :mod:`.runtime`);
- ``api = "triton"``: its NVIDIA Triton runtime for CosyVoice2 and 3,
  ``runtime/triton_trtllm`` (see :mod:`.triton`);
- ``api = "tts"``: the ``POST /tts`` form wrapper deployments put around CosyVoice3 (see :mod:`.runtime`).

``generation`` (or ``model``) decides the sample rate, what a voice is and
which requests are refused before any engine time (:mod:`.options`). Every
interface is pooled over ``url``/``instances``/``backup``.
"""

from __future__ import annotations

from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.cosyvoice.options import UPSTREAM, CosyVoiceOptions, capabilities
from voxserve.engines.cosyvoice.runtime import CosyVoiceRuntime
from voxserve.engines.kind import BuildContext, EngineKind, Servers
from voxserve.engines.prompts import configured_prompts
from voxserve.engines.remote import default_client

__all__ = ["KIND", "UPSTREAM", "CosyVoiceOptions", "CosyVoiceRuntime", "capabilities"]


def _build(config: EngineSettings, options: CosyVoiceOptions, context: BuildContext) -> Servers:
    prompts = configured_prompts(options.voices, context, config)

    def make(url: str) -> Engine:
        if options.api == "triton":
            from voxserve.engines.cosyvoice.triton import CosyVoiceTriton  # tritonclient: an extra

            return CosyVoiceTriton(config.name, url, options, prompts, config.read_timeout)
        return CosyVoiceRuntime(config.name, default_client(url, config.read_timeout), options, prompts)

    return Servers(make)


KIND = EngineKind(
    "cosyvoice",
    CosyVoiceOptions,
    _build,
    "CosyVoice 1, 2 and 3: its FastAPI runtime, its Triton runtime, or the /tts form of its web demos",
    needs_url=True,
)
