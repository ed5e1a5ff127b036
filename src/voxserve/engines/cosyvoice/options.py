"""What a ``cosyvoice`` engine table says, and what follows from the model generation it names.

CosyVoice's three generations look alike on the wire and behave differently
(FunAudioLLM/CosyVoice@ace7c47f41bbd303aa6bf1ea80e6f9fbd595cd40,
``cosyvoice/cli/cosyvoice.py``, ``cosyvoice/llm/llm.py``, ``example.py``):

- **1** (CosyVoice-300M, -SFT, -Instruct): 22050 Hz; preset speakers
  (``spk_id``, e.g. 中文女); ``inference_instruct`` only on -Instruct (its
  class asserts it), and no ``inference_instruct2`` at all.
- **2** (CosyVoice2-0.5B): 24000 Hz; no preset speakers (``/inference_sft``
  with 中文女 raises ``KeyError``): a voice is a recording and its
  transcript; instructions go with a recording to ``inference_instruct2``.
- **3** (Fun-CosyVoice3-0.5B): as 2, and its LLM asserts ``<|endofprompt|>``
  in the text or prompt text: upstream writes the prompt text as
  ``You are a helpful assistant.<|endofprompt|>`` + transcript, and
  instructions as ``You are a helpful assistant. …<|endofprompt|>``. Its
  front end reads pinyin and ARPAbet marks (``[j][ǐ]``).

One setting (``generation``, or the ``model`` the server runs) decides all of
it; a table that cannot work (preset speakers on 2 or 3, a sample rate the
model does not have) is an error when settings load.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from voxserve.engines.kind import EngineOptions
from voxserve.engines.prompts import IdsOrPrompts, PromptVoice
from voxserve.values import Capabilities, voices_named

#: Upstream's code, as these adapters and the tests' stand-ins follow it.
UPSTREAM = "FunAudioLLM/CosyVoice@ace7c47f41bbd303aa6bf1ea80e6f9fbd595cd40"
END_OF_PROMPT = "<|endofprompt|>"
SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class Generation:
    """What one CosyVoice generation is: its rate, its voices and how its texts are written."""

    number: Literal[1, 2, 3]

    @property
    def label(self) -> str:
        return "CosyVoice" if self.number == 1 else f"CosyVoice{self.number}"

    @property
    def sample_rate(self) -> int:
        return 22050 if self.number == 1 else 24000

    @property
    def has_presets(self) -> bool:
        """Ships speakers by name (``spk2info``); 2 and 3 have none."""
        return self.number == 1

    @property
    def reads_marks(self) -> bool:
        """Reads ``[h][ǎo]`` pinyin and ``[M][AY0]`` ARPAbet in its text (upstream's "hotfix")."""
        return self.number == 3

    def prompt_text(self, transcript: str) -> str:
        """A recording's transcript as ``prompt_text`` (zero-shot)."""
        return self._system(transcript) if self.number == 3 else transcript

    def cross_lingual_text(self, text: str) -> str:
        """The text to speak when the recording has no transcript (it goes without a prompt text)."""
        return self._system(text) if self.number == 3 else text

    def instruct_text(self, instructions: str) -> str:
        """Instructions as ``instruct_text``: ended by ``<|endofprompt|>`` in every generation's
        examples, after the system prompt in 3's."""
        if END_OF_PROMPT in instructions:
            return instructions
        prefix = f"{SYSTEM_PROMPT} " if self.number == 3 else ""
        return f"{prefix}{instructions}{END_OF_PROMPT}"

    @staticmethod
    def _system(text: str) -> str:
        return text if END_OF_PROMPT in text else f"{SYSTEM_PROMPT}{END_OF_PROMPT}{text}"


def generation_of(model: str) -> Literal[1, 2, 3] | None:
    """The generation a model's name says (``iic/CosyVoice2-0.5B`` → 2), if it says one."""
    if re.search(r"CosyVoice3", model, re.IGNORECASE):
        return 3
    if re.search(r"CosyVoice2", model, re.IGNORECASE):
        return 2
    if re.search(r"CosyVoice-300M", model, re.IGNORECASE):
        return 1
    return None


def _distinct_transcripts(voices: dict[str, PromptVoice]) -> None:
    """Upstream's Triton model keeps each voice by its transcript alone (``speaker_cache``, keyed by
    ``reference_text``): two voices that say the same words would both speak as the first."""
    said: dict[str, str] = {}
    for name, voice in voices.items():
        other = said.setdefault(voice.text.strip(), name)
        if other != name:
            raise ValueError(
                f"voices {other!r} and {name!r} have the same transcript; upstream's Triton model keeps "
                "a voice by its transcript, so both would speak as the first: record different words"
            )


class CosyVoiceOptions(EngineOptions):
    api: Literal["runtime", "triton", "tts"] = Field(
        default="runtime",
        description="runtime: runtime/python/fastapi/server.py; triton: runtime/triton_trtllm; "
        "tts: the POST /tts form wrapper deployments put around CosyVoice3",
    )
    generation: Literal[1, 2, 3] | None = Field(default=None, description="CosyVoice 1, 2 or 3")
    model: str | None = Field(
        default=None, description="the model the server runs (--model_dir), e.g. iic/CosyVoice2-0.5B"
    )
    voices: IdsOrPrompts = Field(
        description="CosyVoice 1: speaker ids (spk_id); any: voice id → recording and transcript",
    )
    sample_rate: int | None = Field(
        default=None, gt=0, description="the model's own (22050 for 1, 24000 for 2/3)"
    )
    languages: list[str] = Field(default_factory=lambda: ["zh", "en", "ja"])
    max_segment_chars: int = Field(default=200, ge=20)
    reference_root: str | None = Field(
        default=None, description="api = 'tts': where the server sees voxserve's voice library"
    )
    triton_model: str | None = Field(
        default=None,
        description="api = 'triton': the model in the repository (default cosyvoice2/cosyvoice3)",
    )
    triton_protocol: Literal["grpc", "http"] = Field(
        default="grpc",
        description="api = 'triton': grpc (a model deployed decoupled, upstream's default: audio streams) "
        "or http (decoupled_mode False: whole answers); url and instances are addresses of that protocol",
    )

    @field_validator("generation", mode="before")
    @classmethod
    def _number_in_words(cls, value: object) -> object:
        """A generation given as text (an environment variable's "3") is the number."""
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _workable(self) -> CosyVoiceOptions:
        named = generation_of(self.model) if self.model else None
        if self._number() is None:
            raise ValueError(
                "say which CosyVoice the server runs: generation = 1, 2 or 3, or model = its --model_dir "
                "(e.g. 'iic/CosyVoice2-0.5B'); the sample rate, the voices and the routes depend on it"
            )
        if self.generation is not None and named is not None and named != self.generation:
            raise ValueError(f"model {self.model!r} is CosyVoice {named}, not generation = {self.generation}")
        generation = self.model_generation
        if self.sample_rate is not None and self.sample_rate != generation.sample_rate:
            raise ValueError(
                f"{generation.label} answers at {generation.sample_rate} Hz; "
                f"sample_rate = {self.sample_rate} would play its headerless audio at the wrong speed "
                "(leave sample_rate out)"
            )
        presets = isinstance(self.voices, list)
        if presets and not generation.has_presets and self.api != "tts":
            raise ValueError(
                f"{generation.label} ships no preset speakers "
                f"({', '.join(map(repr, self.voices))} would fail on its server with KeyError): "
                "give each voice a recording and what it says, "
                'voices = { name = { audio = "/voices/name.wav", text = "what it says" } }'
            )
        if self.api == "triton" and generation.number == 1:
            raise ValueError("upstream's Triton runtime serves CosyVoice2 and CosyVoice3, not CosyVoice 1")
        if self.api == "triton" and presets:
            raise ValueError("upstream's Triton models take a recording and its transcript as the voice")
        if self.api == "triton" and isinstance(self.voices, dict):
            _distinct_transcripts(self.voices)
        if self.api == "triton" and importlib.util.find_spec("tritonclient") is None:
            raise ValueError("api = 'triton' needs tritonclient: pip install 'voxserve[triton]'")
        misplaced = {
            "reference_root": self.api != "tts",
            "triton_model": self.api != "triton",
            "triton_protocol": self.api != "triton",
        }
        wrong = sorted(name for name, bad in misplaced.items() if bad and name in self.model_fields_set)
        if wrong:
            raise ValueError(f"{', '.join(wrong)} do not apply to api = {self.api!r}")
        return self

    def _number(self) -> Literal[1, 2, 3] | None:
        """The generation given, or the one the model's name says, or 1 for a 22050 Hz server (only
        CosyVoice 1 runs at that rate)."""
        named = generation_of(self.model) if self.model else None
        return self.generation or named or (1 if self.sample_rate == Generation(1).sample_rate else None)

    @property
    def model_generation(self) -> Generation:
        """The generation (the validator refused a table that does not say one)."""
        number = self._number()
        assert number is not None
        return Generation(number)

    @property
    def instruct_model(self) -> bool:
        """CosyVoice 1 takes instructions only as CosyVoice-300M-Instruct."""
        return self.model is not None and "instruct" in self.model.lower()


def _instructions_refused(options: CosyVoiceOptions) -> str | None:
    """Why a CosyVoice 1 server cannot take instructions, if it cannot."""
    if options.api != "runtime" or options.model_generation.number != 1:
        return None
    if not options.instruct_model:
        return (
            "CosyVoice 1 follows instructions only as CosyVoice-300M-Instruct (upstream asserts it); "
            "if the server runs it, set model = 'iic/CosyVoice-300M-Instruct', else drop instructions"
        )
    if isinstance(options.voices, dict):
        return "CosyVoice 1 has no inference_instruct2: instructions go only with its preset speakers"
    return None


def capabilities(name: str, options: CosyVoiceOptions) -> Capabilities:
    generation = options.model_generation
    api = options.api
    return Capabilities(
        languages=frozenset(options.languages),
        voices=voices_named(name, list(options.voices), options.languages),
        sample_rate=generation.sample_rate,
        max_segment_chars=options.max_segment_chars,
        streaming=api == "runtime" or (api == "triton" and options.triton_protocol == "grpc"),
        cloning=api != "tts" or options.reference_root is not None,
        clone_needs_transcript=api == "triton",  # its models align the recording with what it says
        markup=generation.reads_marks,
        instructions=api == "runtime" and (generation.number > 1 or options.instruct_model),
        instructions_with_clones=generation.number > 1,
        instructions_refused=_instructions_refused(options),
        seeded=api == "tts",  # the runtime draws its own random seed per request
        whole_sentences=True,  # its front end splits and normalizes its own text
    )
