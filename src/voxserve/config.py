"""Settings: defaults < TOML file < ``VOXSERVE_*`` environment < command-line flags.

One typed :class:`Settings` object is built by the command line (or a test) and
passed to :func:`voxserve.api.create_app`; no module reads settings at import.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from voxserve import kokoro_names
from voxserve.engine_settings import EngineSettings

CONFIG_FILE_ENV = "VOXSERVE_CONFIG"

#: Whisper base's error rate on each of Kokoro's voices in its own language, 20 sentences each (words;
#: characters for Mandarin, Japanese and Hindi; lower is better), from ``python -m bench voices-quality``
#: (docs/voices.md). A request naming no voice, OpenAI's voice names and Kokoro-FastAPI's speak with
#: the best of these in the text's language (of the name's gender); a tie goes to the first listed.
VOICE_ERROR_RATES: dict[str, dict[str, float]] = {
    "en": {
        "am_liam": 0.01, "af_nicole": 0.016, "af_alloy": 0.022, "af_kore": 0.022, "af_nova": 0.022,
        "af_river": 0.022, "af_sky": 0.022, "am_adam": 0.022, "am_echo": 0.022, "am_fenrir": 0.022,
        "am_michael": 0.022, "am_onyx": 0.022, "bf_isabella": 0.022, "bm_george": 0.022, "bm_lewis": 0.022,
        "bf_emma": 0.027, "bm_fable": 0.027, "af_bella": 0.028, "af_heart": 0.028, "af_sarah": 0.028,
        "bm_daniel": 0.028, "af_aoede": 0.032, "am_eric": 0.032, "am_puck": 0.032, "bf_alice": 0.033,
        "af_jessica": 0.04, "bf_lily": 0.045, "am_santa": 0.046,
    },
    "zh": {
        "zm_yunjian": 0.055, "zm_yunxi": 0.063, "zm_yunxia": 0.074, "zf_xiaobei": 0.086, "zm_yunyang": 0.1,
        "zf_xiaoxiao": 0.104, "zf_xiaoyi": 0.108, "zf_xiaoni": 0.444,
    },
    "ja": {
        "jf_nezumi": 0.161, "jf_gongitsune": 0.167, "jf_tebukuro": 0.168, "jf_alpha": 0.181,
        "jm_kumo": 0.194,
    },
    "es": {
        "ef_dora": 0.094, "em_alex": 0.094, "em_santa": 0.1,
    },
    "fr": {
        "ff_siwis": 0.197,
    },
    "it": {
        "if_sara": 0.096, "im_nicola": 0.114,
    },
    "pt": {
        "pf_dora": 0.138, "pm_alex": 0.144, "pm_santa": 0.204,
    },
    "hi": {
        "hf_beta": 0.462, "hm_psi": 0.468, "hf_alpha": 0.48, "hm_omega": 0.503,
    },
}  # fmt: skip
#: Without Kokoro's voice set (no npm at install), what speaks English and Mandarin: hibari's one
#: voice and the Japanese voices, best first, as before the native voices came.
FALLBACK_VOICES: dict[str, list[str]] = {
    "en": ["heart", "jm_kumo", "jf_gongitsune", "jf_tebukuro"],
    "zh": ["jf_alpha", "jm_kumo", "jf_gongitsune"],
}
#: Genders of embedded voices not named Kokoro's way (``af_``: American female).
OTHER_VOICE_GENDERS = {"heart": "female"}
#: The alias a request naming no voice resolves through (``voice_aliases.default`` changes it).
DEFAULT_VOICE = "default"


def voice_gender(voice: str) -> str | None:
    if kokoro_names.NAME.fullmatch(voice):
        return kokoro_names.gender_of(voice)
    return OTHER_VOICE_GENDERS.get(voice)


#: OpenAI's voice names by the gender of OpenAI's own voice.
OPENAI_VOICE_GENDERS: dict[str, str] = {
    "alloy": "female",
    "ash": "male",
    "ballad": "male",
    "coral": "female",
    "echo": "male",
    "fable": "male",
    "onyx": "male",
    "nova": "female",
    "sage": "female",
    "shimmer": "female",
    "verse": "male",
    "marin": "female",
    "cedar": "male",
}

#: An alias names one voice for every language, or a voice (or voices, first available wins) per
#: language code, with ``"*"`` for the languages not listed.
VoiceAlias = str | dict[str, str | list[str]]


def voices_for(gender: str | None) -> dict[str, str | list[str]]:
    """The best-measured voices of ``gender`` (None: either) in each language, as an alias's table;
    a language with no voice of that gender gets its others (a native speaker comes first)."""
    table: dict[str, str | list[str]] = {}
    for language, rates in VOICE_ERROR_RATES.items():
        ranked = [*sorted(rates, key=rates.__getitem__), *FALLBACK_VOICES.get(language, [])]
        table[language] = [voice for voice in ranked if voice_gender(voice) == gender] or ranked
    return table


#: OpenAI's voice names, each mapped per language onto the best embedded voice of its gender, and
#: ``default`` (a request naming no voice) onto the best of either. An engine that has none of an
#: alias's voices uses its own first voice instead.
DEFAULT_VOICE_ALIASES: dict[str, VoiceAlias] = {
    DEFAULT_VOICE: voices_for(None),
    **{name: voices_for(gender) for name, gender in OPENAI_VOICE_GENDERS.items()},
}

#: A model that pins no engine: the language and the voice choose, as when no model is named.
AUTO_MODEL = "auto"

#: OpenAI's model names, mapped onto voxserve engines (``auto``: whichever fits the request). An
#: OpenAI client must name a model; pinning one engine would keep it from the voices the names
#: stand for in each language.
DEFAULT_MODEL_ALIASES: dict[str, str] = {
    "tts-1": AUTO_MODEL,
    "tts-1-hd": AUTO_MODEL,
    "gpt-4o-mini-tts": AUTO_MODEL,
}


#: The URL schemes redis-py opens: TCP, TLS, and a unix socket.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SQLITE_SCHEME = "sqlite:///"
MEMORY_URL = "memory://"


@dataclass(frozen=True)
class Backend:
    """Where a store keeps its state, read once from its setting: a SQLite file, a Redis (the URL
    redis-py opens), or this process's memory (limits only: each replica would count alone)."""

    kind: Literal["sqlite", "redis", "memory"]
    location: str = ""  # the file, or the Redis URL

    @property
    def shared(self) -> bool:
        """Whether several processes (replicas, workers) see one state through it."""
        return self.kind == "redis"


def _store_url(url: str | None, allowed: tuple[str, ...], setting: str) -> str | None:
    if url is not None and not url.startswith(allowed):
        raise ValueError(f"{setting} must start with {', '.join(allowed)}; got {url!r}")
    return url


#: Debian's espeak-ng as a ``command`` engine: every language it knows (100+), found at load.
ESPEAK_NG_OPTIONS: dict[str, Any] = {
    "command": ["espeak-ng", "--stdout", "--stdin", "-v", "{language}{voice}"],
    "discover_languages": {"command": ["espeak-ng", "--voices"], "pattern": r"^\s*\d+\s+(\S+)"},
    "languages": {"en": "en-us", "zh": "cmn"},
    "voices": {"espeak": "", "espeak-f": "+f3"},
    "sample_rate": 22050,
}


def embedded_engines() -> list[EngineSettings]:
    """The embedded engines, and espeak-ng as the fallback for other languages where it is installed."""
    engines = [EngineSettings(name="kokoro", kind="kokoro"), EngineSettings(name="hibari", kind="hibari")]
    if shutil.which("espeak-ng"):
        engines.append(EngineSettings(name="espeak", kind="command", options=ESPEAK_NG_OPTIONS))
    return engines


class ReferenceSettings(BaseModel):
    """Reference audio for cloning (``[references]``, ``VOXSERVE_REFERENCES__*``): what, and from where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="largest reference audio")
    min_seconds: float = Field(default=3.0, ge=0.5, description="shortest reference audio")
    max_seconds: float = Field(default=15.0, ge=1.0, description="longest reference audio")
    min_rate: int = Field(default=16000, ge=8000, description="lowest reference sample rate")
    dirs: list[Path] = Field(
        default_factory=list, description="directories /tts audio_path may read from (none: refused)"
    )
    url_hosts: list[str] = Field(
        default_factory=list, description="hosts reference audio URLs may name (none: URLs refused)"
    )
    fetch_seconds: float = Field(
        default=20.0, gt=0, description="the whole download of a reference URL, however slowly it is sent"
    )
    url_private: bool = Field(
        default=False, description="let reference URLs reach loopback and private addresses"
    )


class WebhookSettings(BaseModel):
    """Job webhooks (``[webhooks]``, ``VOXSERVE_WEBHOOKS__*``): where jobs' ends may be posted, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str | None = Field(
        default=None,
        min_length=16,
        description="the secret every key's signing secret is made from (none: one is made once and "
        "kept in the artifact store, so replicas on shared storage agree)",
    )
    default_url: str | None = Field(
        default=None,
        max_length=2048,
        description="where jobs post their end when neither they nor their key say",
    )
    hosts: list[str] = Field(
        default_factory=lambda: ["*"], description="hosts webhook URLs may name ('*': any public host)"
    )
    private: bool = Field(default=False, description="let webhook URLs reach loopback and private addresses")
    attempts: int = Field(default=10, ge=1, le=50, description="tries before a delivery is given up")
    backoff_seconds: float = Field(
        default=5.0,
        gt=0,
        description="the wait after the first failed try; doubled after each, up to an hour",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="one try, connecting and answering")
    sweep_seconds: float = Field(
        default=30.0, gt=0, description="how often deliveries left by a stopped process are looked for"
    )


class JobSettings(BaseModel):
    """The job queue and its workers (``[jobs]``, ``VOXSERVE_JOBS__*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_url: str | None = Field(
        default=None, description="redis://host:port/db for a shared queue; default: SQLite in data_dir"
    )
    queue_prefix: str = Field(
        default="voxserve", description="Redis key prefix (several services, one Redis)"
    )
    workers: int = Field(default=1, ge=0, description="job workers inside `serve` (0: use `voxserve worker`)")
    concurrency: int = Field(default=1, ge=1, description="jobs one worker runs at once")
    max_chars: int = Field(default=1_000_000, ge=1)
    max_audio_seconds: float = Field(
        default=86400.0, gt=0, description="audio one job may make (pauses and speed count)"
    )
    max_attempts: int = Field(default=3, ge=1, le=20)
    lease_seconds: float = Field(default=30.0, gt=0, description="how soon a dead worker's job is taken up")
    poll_seconds: float = Field(default=0.5, gt=0, description="longest wait for work between checks")
    retry_base_seconds: float = Field(
        default=1.0, ge=0, description="first retry delay; doubles, with jitter"
    )
    retry_cap_seconds: float = Field(default=60.0, ge=0, description="longest retry delay")
    retention_hours: float = Field(default=48.0, gt=0)
    disk_limit_bytes: int = Field(
        default=20 * 1024**3, ge=0, description="refuse new jobs, and fail running ones, beyond this"
    )
    janitor_interval_seconds: float = Field(default=600.0, gt=0)

    @field_validator("queue_url")
    @classmethod
    def _known_queue(cls, url: str | None) -> str | None:
        return _store_url(url, (*REDIS_SCHEMES, SQLITE_SCHEME), "jobs.queue_url")


class StorageSettings(BaseModel):
    """Where finished job audio and the voice library live (``[storage]``, ``VOXSERVE_STORAGE__*``).

    Gateways and workers on different machines share this (and the Redis queue); each keeps its
    running jobs' files and the segment cache on its own ``data_dir``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        default=None,
        description="s3://bucket/prefix, or a directory (a path or file:///...; an NFS/NAS mount); "
        "default: data_dir",
    )
    endpoint_url: str | None = Field(
        default=None, description="an S3-compatible server (MinIO, Ceph, Garage...); default: AWS"
    )
    region: str | None = None
    access_key_id: str | None = Field(default=None, description="default: boto3's (AWS_ACCESS_KEY_ID, ...)")
    secret_access_key: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and "://" in url and not url.startswith(("s3://", "file://")):
            raise ValueError(f"storage.url must be s3://bucket/prefix, file:///path or a path, got {url!r}")
        if url is not None and url.startswith("s3://") and not url[5:].split("/")[0]:
            raise ValueError("storage.url s3:// needs a bucket: s3://bucket/prefix")
        return url


#: What a key may be allowed to do; ``admin`` also sees every key's jobs and voices.
SCOPES = ("speech", "jobs", "voices", "admin")
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "::1"]


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's alone (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Quota(BaseModel):
    """Limits of a key, or of one client address without a key. A field left out has no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1)
    chars_per_day: int | None = Field(
        default=None, ge=1, description="characters synthesized (speech and jobs)"
    )
    chars_per_month: int | None = Field(default=None, ge=1)
    concurrent_streams: int | None = Field(default=None, ge=1, description="speech requests at once")
    max_job_chars: int | None = Field(default=None, ge=1, description="the longest job it may submit")
    max_audio_seconds: float | None = Field(default=None, gt=0, description="audio one request may make")

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        """``true`` is not a number of anything (lax parsing would take it as 1)."""
        if isinstance(value, bool):
            raise ValueError("a limit is a number or null, not true or false")
        return value

    def over(self, defaults: Quota) -> Quota:
        """These limits where they are set, ``defaults`` elsewhere (a key's own over everyone's)."""
        return defaults.model_copy(update=self.model_dump(exclude_unset=True))


class AuthSettings(BaseModel):
    """Who may use the API, and from where (``[auth]``, ``VOXSERVE_AUTH__*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="require an API key (off: one local user, no keys)")
    allowed_hosts: list[str] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host header values answered (DNS rebinding); '*' answers any, '.example.com' a domain",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses or networks whose X-Forwarded-For / X-Real-IP count"
    )
    cors_origins: list[str] = Field(default_factory=list, description="browser origins allowed ('*': any)")
    cors_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE"])
    cors_headers: list[str] = Field(
        default_factory=lambda: [
            "Authorization",
            "X-API-Key",
            "Content-Type",
            "Idempotency-Key",
            "Cache-Control",
        ]
    )
    public_docs: bool = Field(default=False, description="/docs, /redoc, /openapi.json without a key")
    public_metrics: bool = Field(default=False, description="/metrics without a key (else: admin)")
    public_engines: bool = Field(default=False, description="/v1/engines without a key")


class LimitSettings(BaseModel):
    """Quotas and rate limits (``[limits]``, ``VOXSERVE_LIMITS__*``), counted in memory or in Redis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    storage_url: str | None = Field(
        default=None,
        description="memory:// (one process) or redis://...; default: the job queue's Redis, else memory",
    )

    @field_validator("storage_url")
    @classmethod
    def _known_limits(cls, url: str | None) -> str | None:
        return _store_url(url, (MEMORY_URL, *REDIS_SCHEMES), "limits.storage_url")

    keys: Quota = Field(
        default_factory=lambda: Quota(requests_per_minute=600, concurrent_streams=8),
        description="every key's limits, unless the key sets its own",
    )
    anonymous: Quota = Field(
        default_factory=Quota, description="per client address, for requests without a key"
    )


class ModerationSettings(BaseModel):
    """Text checked before synthesis (``[moderation]``): a blocklist file, an HTTP service, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blocklist: Path | None = Field(default=None, description="a file: one word, phrase or /regex/ a line")
    url: str | None = Field(
        default=None, description='POST {"input": text} → {"allowed": bool, "reason": str}'
    )
    timeout: float = Field(default=2.0, gt=0, description="seconds the service may take (then refused)")


class TextStreamSettings(BaseModel):
    """Text that arrives in pieces (the WebSocket ``/v1/audio/speech/stream``, Wyoming's streaming
    synthesis): how much may wait to be spoken, and how long a stream may stay open."""

    model_config = ConfigDict(extra="forbid")

    max_queued_chars: int = Field(
        default=16_384, ge=1, description="text received and not yet spoken (more is refused until it is)"
    )
    idle_seconds: float = Field(default=60.0, gt=0, description="a stream with no text for this long closes")
    max_seconds: float = Field(default=3600.0, gt=0, description="the longest a stream may stay open")


class WyomingSettings(BaseModel):
    """The Wyoming server (Home Assistant, Rhasspy): off unless ``uri`` is set. Wyoming has no
    authentication, so a bind beyond loopback needs ``allowed_clients``."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(
        default=None,
        pattern=r"^tcp://\S+:\d+$",
        description="where it listens, e.g. tcp://127.0.0.1:10200 (unset: no Wyoming server)",
    )
    allowed_clients: list[str] = Field(
        default_factory=list,
        description="addresses or networks that may connect besides loopback (needed to bind beyond it)",
    )

    @field_validator("allowed_clients")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an address or network (10.0.0.0/8, 192.168.1.20)"
                ) from None
        return entries

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> WyomingSettings:
        host = self.host
        if host is not None and not self.allowed_clients and not is_loopback(host):
            raise ValueError(
                f"wyoming.uri binds {host}, beyond this machine, and Wyoming has no keys: set "
                "wyoming.allowed_clients to the addresses that may connect (see docs/security.md)"
            )
        return self

    @property
    def host(self) -> str | None:
        return urlsplit(self.uri).hostname if self.uri else None

    @property
    def port(self) -> int | None:
        return urlsplit(self.uri).port if self.uri else None


class Settings(BaseSettings):
    """Everything voxserve can be told. Field docs double as ``voxserve config`` help."""

    model_config = SettingsConfigDict(
        env_prefix="VOXSERVE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve Prometheus metrics on this port too, without a key (none: only /metrics)",
    )
    metrics_address: str = Field(default="127.0.0.1", description="the address the metrics port listens on")
    data_dir: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("voxserve"),
        description="where state lives (models, jobs, voices, cache): the user's data directory, "
        "the same wherever a command runs",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: text on a terminal, one JSON object per line elsewhere"
    )
    sentry_dsn: SecretStr | None = Field(
        default=None,
        description="report errors to Sentry (needs the sentry extra: pip install voxserve[sentry])",
    )
    otel: bool = Field(
        default=False,
        description="trace requests, jobs and engine calls over OTLP (the otel extra; "
        "OTEL_EXPORTER_OTLP_ENDPOINT says where, as OpenTelemetry's own settings do)",
    )
    switch_interval: float = Field(
        default=0.001,
        gt=0,
        description="seconds a busy thread keeps the GIL before the event loop may take it (Python: 0.005)",
    )

    engines: list[EngineSettings] = Field(
        default_factory=list,
        description="[[engines]] tables: engines beside the embedded ones (a table named like one "
        "replaces it)",
    )
    embedded: bool = Field(
        default=True,
        description="load the embedded engines (kokoro, hibari, espeak-ng) beside the [[engines]] tables; "
        "false: only the tables",
    )
    default_engine: str = Field(
        default="",
        description="the engine for a request that names no model (empty: the first [[engines]] "
        "table's, else kokoro)",
    )
    voice_aliases: dict[str, VoiceAlias] = Field(
        default_factory=lambda: dict(DEFAULT_VOICE_ALIASES),
        description="voice names mapped onto engine voices, merged over the OpenAI names' defaults",
    )
    model_aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODEL_ALIASES))

    max_input_chars: int = Field(default=4096, ge=1, description="limit of a synchronous request")
    load_wait_seconds: float = Field(
        default=60.0, ge=0, description="a request that comes while the engines load waits this long (0: 503)"
    )
    max_audio_seconds: float = Field(
        default=1200.0, gt=0, description="audio one synchronous request may make (pauses and speed count)"
    )
    segment_chars: int = Field(default=200, ge=20, description="longest text piece sent to an engine")
    first_segment_chars: int = Field(
        default=24,
        ge=0,
        description="a streamed request's first piece at most this long (its first clause or words), "
        "when its engine would take longer than first_audio_seconds on the whole first sentence; "
        "0: whole sentences",
    )
    first_audio_seconds: float = Field(
        default=0.6,
        gt=0,
        description="the first audio a listener should wait for at most: a first sentence its engine "
        "would render slower than this (by the engine's measured pace) starts with a short piece",
    )
    sentence_pause: float = Field(default=0.25, ge=0, le=5)
    clause_pause: float = Field(default=0.1, ge=0, le=5)
    cache_max_bytes: int = Field(
        default=1024**3, ge=0, description="disk for cached segment audio, least recently used goes (0: off)"
    )

    references: ReferenceSettings = Field(default_factory=ReferenceSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    text_streams: TextStreamSettings = Field(default_factory=TextStreamSettings)
    wyoming: WyomingSettings = Field(default_factory=WyomingSettings)

    @model_validator(mode="after")
    def _every_engine(self) -> Settings:
        """The tables first, then the embedded engines they do not replace; the first is the default
        unless one is named (that it exists is checked where engines are built: a test or an embedder
        may hand the app engines of its own)."""
        tables = self.engines
        names = [table.name for table in tables]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"engines: two tables are named {', '.join(map(repr, twice))}; names are unique")
        embedded = [e for e in embedded_engines() if e.name not in names] if self.embedded else []
        self.engines = [*tables, *embedded]
        if not self.engines:
            raise ValueError("embedded = false needs at least one [[engines]] table")
        self.default_engine = self.default_engine or self.engines[0].name
        return self

    def for_one_text(self) -> Settings:
        """These settings for one text in this process (``voxserve say``): every engine on one model
        instance with every thread, not warmed up: lanes pay only for texts rendered at once, each
        costs a model load, and a warm-up costs what it saves the one text."""
        one = [engine.model_copy(update={"max_concurrency": 1, "warm_up": False}) for engine in self.engines]
        return self.model_copy(update={"engines": one})

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @property
    def queue_backend(self) -> Backend:
        """Where jobs and keys live: ``jobs.queue_url``, else SQLite in the data directory."""
        url = self.jobs.queue_url
        if url and url.startswith(REDIS_SCHEMES):
            return Backend("redis", url)
        if url:
            return Backend("sqlite", url.removeprefix(SQLITE_SCHEME))
        return Backend("sqlite", str(self.data_dir / "jobs.db"))

    @property
    def limits_backend(self) -> Backend:
        """Where quotas are counted: ``limits.storage_url``, else the job queue's Redis when there is
        one (replicas share the counts), else this process's memory."""
        url = self.limits.storage_url
        if url == MEMORY_URL:
            return Backend("memory")
        if url:
            return Backend("redis", url)
        queue = self.queue_backend
        return queue if queue.shared else Backend("memory")

    @field_validator("voice_aliases", mode="after")
    @classmethod
    def _over_the_defaults(cls, aliases: dict[str, VoiceAlias]) -> dict[str, VoiceAlias]:
        """A configured table adds to (or changes) OpenAI's names rather than replacing them all."""
        return {**DEFAULT_VOICE_ALIASES, **{name.lower(): target for name, target in aliases.items()}}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get(CONFIG_FILE_ENV)
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``config_file`` (or ``$VOXSERVE_CONFIG``) is the TOML layer.

    ``overrides`` are command-line flags: they win over everything else. A flag
    left at ``None`` means "not given" and is dropped.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file not found: {config_file}")
        os.environ[CONFIG_FILE_ENV] = str(config_file)
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)
