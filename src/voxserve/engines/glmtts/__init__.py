"""GLM-TTS (zai-org/GLM-TTS) through its own two interfaces, as upstream ships them.

- ``interface = "gradio"`` (default): servers running upstream's
  ``tools/gradio_app.py`` (``python -m tools.gradio_app``, port 8048), where
  the model stays loaded; one call per segment, seeded, pooled over
  ``url``/``instances``/``backup`` like any remote engine (one call at a
  time per server unless ``max_concurrency``). See :mod:`.gradio`.
- ``interface = "batch"``: upstream's ``glmtts_inference.py`` in a checkout
  (``workdir``), for jobs where no server runs: one process for all of a
  request's or job's segments, one batch per GPU. See :mod:`.batch`.

Every voice is a prompt: a recording and what it says. Configured voices
give both (``voices = { name = { audio = "...", text = "..." } }``); a
cloned library voice must have its transcript (``prompt_text``), or the
request is refused before any engine time. Interfaces checked against
:data:`~.options.UPSTREAM`. A wrapper script with other flags (the
``--input_text ... --prompt_audio ... --output_path ...`` kind) is the
``command`` kind's job, not this one's.
"""

from __future__ import annotations

from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import Engine
from voxserve.engines.glmtts.batch import GlmTtsBatchEngine
from voxserve.engines.glmtts.gradio import GlmTtsGradioEngine, server_setting
from voxserve.engines.glmtts.options import GlmTtsOptions
from voxserve.engines.kind import BuildContext, EngineKind, Servers, waiting_of
from voxserve.engines.prompts import configured_prompts
from voxserve.engines.remote import default_client
from voxserve.values import Capabilities, voices_named

__all__ = ["KIND", "GlmTtsBatchEngine", "GlmTtsGradioEngine", "GlmTtsOptions"]


def capabilities(name: str, options: GlmTtsOptions) -> Capabilities:
    return Capabilities(
        languages=frozenset(options.languages),
        voices=voices_named(name, options.voices, options.languages),
        sample_rate=options.sample_rate,
        max_segment_chars=options.max_segment_chars,
        cloning=True,  # every voice is a prompt; a library voice's reference is one too
        clone_needs_transcript=True,
        seeded=options.interface == "gradio",  # the script fixes its own seed
        whole_sentences=True,  # a GPU model: a clause alone would cost a call and lose the intonation
    )


def _build(config: EngineSettings, options: GlmTtsOptions, context: BuildContext) -> Engine | Servers:
    caps = capabilities(config.name, options)
    prompts = configured_prompts(options.voices, context, config)
    if options.interface == "batch":
        return GlmTtsBatchEngine(config.name, caps, prompts, options, waiting_of(config))

    def make(url: str) -> Engine:
        return GlmTtsGradioEngine(
            config.name,
            default_client(url, config.read_timeout),
            caps,
            prompts,
            api_name=options.api_name,
            use_cache=options.use_cache,
            max_answer_bytes=options.max_answer_bytes,
            timeout=config.read_timeout,
        )

    return Servers(make, limit=1)  # the app runs one call at a time


KIND = EngineKind(
    "glmtts",
    GlmTtsOptions,
    _build,
    "GLM-TTS: its Gradio server (pooled), or its batch script in a checkout",
    needs_url=lambda options: options.interface == "gradio",
    server_setting=server_setting,
)
