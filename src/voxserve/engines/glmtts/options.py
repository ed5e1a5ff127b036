"""What a ``glmtts`` engine table says: which of GLM-TTS's own interfaces, its voices, and where it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from voxserve.engines.kind import EngineOptions
from voxserve.engines.prompts import PromptVoice

#: Upstream's code, as these adapters were checked against it.
UPSTREAM = "zai-org/GLM-TTS@c5dc7aecc3b4032032d631b271e767893984f821"


class GlmTtsOptions(EngineOptions):
    interface: Literal["gradio", "batch"] = Field(
        default="gradio",
        description="gradio: tools/gradio_app.py servers at url/instances; batch: glmtts_inference.py runs",
    )
    voices: dict[str, PromptVoice] = Field(min_length=1, description="voice id → prompt audio and its text")
    sample_rate: Literal[24000, 32000] = 24000
    languages: list[str] = Field(default_factory=lambda: ["zh", "en"])
    max_segment_chars: int = Field(default=200, ge=20)
    # interface = "gradio"
    use_cache: bool = Field(default=True, description="GLM-TTS's KV cache across a text's pieces")
    api_name: str = Field(default="/run_inference", description="the Gradio endpoint (the Generate button)")
    max_answer_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="largest audio file fetched")
    # interface = "batch"
    workdir: Path | None = Field(
        default=None, description="the GLM-TTS checkout (ckpt/, frontend/, examples/)"
    )
    python: str = Field(default="python3", description="the interpreter of GLM-TTS's environment")
    script: str = Field(default="glmtts_inference.py", description="relative to workdir")
    exp_name: str = Field(default="_voxserve", pattern=r"^[\w.-]{1,64}$", description="--exp_name")
    use_phoneme: bool = False
    timeout: float = Field(
        default=900.0, gt=0, description="longest wait for a run's next segment (the first loads the model)"
    )
    gpus: list[str | int] = Field(default_factory=list, description="one run at a time on each GPU")

    @model_validator(mode="after")
    def _interface_fields(self) -> GlmTtsOptions:
        batch_only = {"workdir", "python", "script", "exp_name", "use_phoneme", "timeout", "gpus"}
        gradio_only = {"api_name", "max_answer_bytes", "use_cache"}  # the script's --use_cache is always on
        misplaced = sorted(self.model_fields_set & (gradio_only if self.interface == "batch" else batch_only))
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} do not apply to interface = {self.interface!r}")
        if self.interface == "batch" and self.workdir is None:
            raise ValueError("interface = 'batch' needs workdir: the GLM-TTS checkout it runs in")
        return self
