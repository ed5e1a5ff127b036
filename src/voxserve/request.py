"""The one speech request: what every door (HTTP, ``/tts``, the task API, jobs, the CLI) turns its input into.

Its fields carry their own bounds, so a request that exists is in range:
building one checks speed, pitch, seed, sample rate and the lengths of the
free-text fields, and the doors take their form and command-line bounds
from here (:func:`bounds`) instead of repeating them. What needs the
engines (model, voice, language, capabilities, the text itself) is
:meth:`voxserve.planning.Planner.plan`'s to check.

A job keeps its request as :meth:`SpeechRequest.dump`: versioned, so a
worker of a later voxserve still reads the jobs an earlier one queued.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from voxserve.client.outputs import ResponseFormat
from voxserve.errors import InvalidRequest

SPEED = (0.25, 4.0)
PITCH = (-12.0, 12.0)  # semitones
SEED = (0, 2**32 - 1)
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
#: "use" cached segments; "refresh": synthesize anew and store; "off": neither read nor store.
CacheMode = Literal["use", "refresh", "off"]
DUMP_VERSION = 1


MAX_SPEAKERS = 32
SpeakerName = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
VoiceName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Role(BaseModel):
    """How one speaker of a multi-voice text is read: a voice, and optionally its own engine,
    emotion and speed (else the request's)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    voice: VoiceName
    model: str | None = Field(default=None, max_length=128)
    emotion: str | None = Field(default=None, max_length=64)
    speed: float | None = Field(default=None, ge=SPEED[0], le=SPEED[1], strict=True)


def _role_of(value: Any) -> Any:
    """A speaker given as a voice's name is the role of that voice."""
    return {"voice": value} if isinstance(value, str) else value


#: A speaker's role: ``"af_bella"`` or ``{"voice": "af_bella", "speed": 1.1, ...}``.
SpeakerRole = Annotated[Role, BeforeValidator(_role_of, json_schema_input_type=VoiceName | Role)]


def _distinct_speakers(voices: dict[str, Role] | None) -> dict[str, Role] | None:
    """Speakers are found without case: two names that differ only in case would be one."""
    seen: dict[str, str] = {}
    for name in voices or {}:
        if name.casefold() in seen:
            raise ValueError(f"speakers {seen[name.casefold()]!r} and {name!r} differ only in case")
        seen[name.casefold()] = name
    return voices


#: A multi-voice text's speakers and their roles, checked where any door takes one.
Cast = Annotated[
    dict[SpeakerName, SpeakerRole], AfterValidator(_distinct_speakers), Field(max_length=MAX_SPEAKERS)
]


def brief(cast: dict[str, Role]) -> dict[str, Any]:
    """A cast as JSON, each role with only what it sets."""
    return {name: role.model_dump(exclude_none=True) for name, role in cast.items()}


class SpeechOptions(BaseModel):
    """How to say it: every field a speech request has besides its text."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    model: str | None = Field(default=None, description="Engine, or an OpenAI model name mapped onto one.")
    voice: str | None = Field(default=None, description="A voice id or an OpenAI voice name.")
    response_format: ResponseFormat = "mp3"
    speed: float = Field(default=1.0, ge=SPEED[0], le=SPEED[1], strict=True)
    instructions: str | None = Field(default=None, max_length=4096)
    language: str | None = Field(
        default=None, max_length=16, description="a language code (en, zh-CN, de, ...); detected if absent"
    )
    seed: int | None = Field(default=None, ge=SEED[0], le=SEED[1], strict=True)
    pitch: float = Field(default=0.0, ge=PITCH[0], le=PITCH[1], strict=True, description="semitones")
    emotion: str | None = Field(default=None, max_length=64)
    sample_rate: int | None = Field(
        default=None,
        gt=0,
        strict=True,
        description=f"output sample rate in Hz: {', '.join(map(str, SAMPLE_RATES))}",
    )
    voices: Cast | None = Field(
        default=None,
        description="A multi-voice text's speakers: a script line 'Name: …' or an SSML "
        "<voice name='Name'> is read by the voice (or role) given here.",
    )

    lexicons: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=8,
        description="Pronunciation lexicons to read the text with, by name or id (POST /v1/lexicons); "
        "absent: the key's default lexicons; []: none.",
    )

    def role(self, speaker: str) -> Role | None:
        """The role the ``voices`` table gives a speaker (names compared without case)."""
        for name, role in (self.voices or {}).items():
            if name.casefold() == speaker.casefold():
                return role
        return None


class SpeechRequest(SpeechOptions):
    """What a client asks for, whatever door it came in by."""

    input: str = Field(description="The text to speak.")
    cache: CacheMode = "use"

    def dump(self) -> dict[str, Any]:
        """Everything but the text (a job stores that on its own), with the dump's version."""
        dumped = self.model_dump(exclude={"input", "voices"})
        return {"version": DUMP_VERSION, **dumped, "voices": brief(self.voices) if self.voices else None}

    @classmethod
    def load(cls, text: str, dumped: dict[str, Any]) -> SpeechRequest:
        """A stored request back (every dump says its version)."""
        fields = dict(dumped)
        version = fields.pop("version")
        if fields.get("lexicons") == {}:  # Redis's Lua (cjson) writes an empty list back as {}
            fields["lexicons"] = []
        if version > DUMP_VERSION:
            raise InvalidRequest(
                f"this job was queued by a newer voxserve (request version {version}); "
                f"this worker reads up to version {DUMP_VERSION}",
                param="request",
            )
        return cls(input=text, **fields)


def bounds(field: str) -> dict[str, float]:
    """A field's numeric bounds as keyword arguments (``ge``, ``le``, ``gt``) for a form or an option."""
    found: dict[str, float] = {}
    for constraint in SpeechRequest.model_fields[field].metadata:
        if isinstance(constraint, Ge):
            found["ge"] = float(constraint.ge)  # type: ignore[arg-type]
        elif isinstance(constraint, Le):
            found["le"] = float(constraint.le)  # type: ignore[arg-type]
        elif isinstance(constraint, Gt):
            found["gt"] = float(constraint.gt)  # type: ignore[arg-type]
    return found
