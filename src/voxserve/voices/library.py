"""The voice library: cloned voices and saved blends, registered once and used by id or name.

Storage is deduplicated by content, never by name: a cloned voice's
canonical reference audio (see :mod:`voxserve.voices.reference`) is stored
once as ``a_<hash>.wav`` however many voices use it, and each voice is its
own ``<id>.json``. A voice's id follows from its content and its name, so
the same recording (or blend) sent again under the same name is the same
voice, under a new name a new voice, and a name, once given, stays with its
voice until that voice is deleted: nobody can take it over or rename it by
sending the same audio. Everything is kept in the artifact store under
``voices/`` (``data_dir/voices`` by default, or shared S3/NAS storage),
written whole; the store is the only state, so a worker in another process,
or on another machine, sees a voice as soon as the gateway has stored it.
With shared storage, a reference an engine reads is fetched once into a
local cache directory.

Every method blocks on the store: callers run them in a thread.

With API keys, a voice belongs to the key that made it: names are per key,
and a :class:`Viewer` that is not everyone's finds only its own voices
(another key's are not there for it at all).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from voxserve.errors import Conflict, InvalidRequest, UnknownVoice
from voxserve.storage import ArtifactStore, LocalStore
from voxserve.values import Reference
from voxserve.voices.reference import CheckedReference

PREFIX = "voices/"
NAME = re.compile(r"^[\w][\w .\-]{0,63}$")
ID = re.compile(r"^v_[0-9a-f]{16}$")


@dataclass(frozen=True)
class Voice:
    id: str
    kind: Literal["cloned", "blend"]
    name: str | None = None
    prompt_text: str | None = None
    language: str | None = None
    seconds: float | None = None
    source_format: str | None = None
    source_rate: int | None = None
    blend: str | None = None  # the formula, for kind "blend"
    engine: str | None = None  # the engine whose voices a blend mixes
    audio: str | None = None  # the stored reference's content hash (voices made before it: the id)
    owner: str | None = None  # the API key that made it; None without keys
    created: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class Viewer:
    """Whose voices a request may find: ``owner``'s own, or (``everyone``) any, its own first."""

    owner: str | None = None
    everyone: bool = True

    def sees(self, voice: Voice) -> bool:
        return self.everyone or voice.owner == self.owner


EVERYONE = Viewer()


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME.match(name) or ID.match(name):
        raise InvalidRequest(
            f"name {name[:80]!r} is not allowed: 1–64 letters, digits, spaces, '.', '-' or '_', "
            "starting with a letter or digit, and not shaped like a voice id",
            param="name",
        )
    return name


class VoiceLibrary:
    def __init__(self, artifacts: ArtifactStore, cache: Path | None = None) -> None:
        self.artifacts = artifacts
        self.cache = cache
        self._lock = threading.Lock()
        self._records: dict[str, Voice] = {}  # a voice's record never changes: read once per process

    @staticmethod
    def _key(name: str) -> str:
        return f"{PREFIX}{name}"

    def _load(self, voice_id: str) -> Voice | None:
        data = self.artifacts.get_bytes(self._key(f"{voice_id}.json"))
        if data is None:
            return None
        try:
            return Voice(**json.loads(data))
        except (ValueError, TypeError):
            return None

    def list(self, viewer: Viewer = EVERYONE) -> list[Voice]:
        """The voices ``viewer`` may see, oldest first (one listing of the store; records are read once)."""
        keys = [key for key in self.artifacts.keys(self._key("v_")) if key.endswith(".json")]
        ids = [key[len(PREFIX) : -len(".json")] for key in keys]
        for voice_id in ids:
            if voice_id not in self._records and (voice := self._load(voice_id)) is not None:
                self._records[voice_id] = voice
        stored = set(ids)
        voices = sorted((v for i, v in self._records.items() if i in stored), key=lambda v: v.created)
        return [voice for voice in voices if viewer.sees(voice)]

    def get(self, key: str, viewer: Viewer = EVERYONE) -> Voice | None:
        """A voice by id or by name that ``viewer`` may see (by name: its own first); None if none."""
        if ID.match(key):
            voice = self._load(key)
            return voice if voice is not None and viewer.sees(voice) else None
        named = [voice for voice in self.list(viewer) if voice.name == key]
        return next((voice for voice in named if voice.owner == viewer.owner), named[0] if named else None)

    def require(self, key: str, param: str = "voice_id", viewer: Viewer = EVERYONE) -> Voice:
        voice = self.get(key, viewer)
        if voice is None:
            raise UnknownVoice(f"voice {key!r} is not in the voice library (GET /v1/voices)", param=param)
        return voice

    def _existing(self, name: str | None, voice_id: str, owner: str | None) -> Voice | None:
        """The voice already stored under this id; Conflict if another voice of the owner holds the name."""
        existing = self._load(voice_id)
        if existing is not None:
            return existing
        holder = self.get(name, Viewer(owner, everyone=False)) if name is not None else None
        if holder is not None:
            raise Conflict(f"a voice named {name!r} already exists ({holder.id})", param="name")
        return None

    def add_reference(
        self,
        checked: CheckedReference,
        name: str | None = None,
        prompt_text: str | None = None,
        language: str | None = None,
        owner: str | None = None,
    ) -> tuple[Voice, bool]:
        """Store a checked reference; (the voice, whether it is new). Same audio, transcript and name: the
        same voice."""
        audio = checked.wav_bytes()
        digest = hashlib.sha256(audio).hexdigest()[:16]
        transcript = (prompt_text or "").strip() or None
        # an unnamed recording said to say something else is another voice (to engines that read it)
        identity = f"{digest}\n{transcript}" if transcript and name is None else digest
        with self._lock:
            existing = self._existing(name, _voice_id(identity, name, owner), owner)
            if existing is not None and transcript and existing.prompt_text != transcript:
                raise Conflict(
                    f"voice {name!r} ({existing.id}) already has this audio with another transcript; "
                    "give it another name",
                    param="prompt_text",
                )
            if existing is not None:
                return existing, False
            voice = Voice(
                id=_voice_id(identity, name, owner),
                kind="cloned",
                name=name,
                owner=owner,
                prompt_text=transcript,
                language=language,
                seconds=checked.seconds,
                source_format=checked.source_format,
                source_rate=checked.source_rate,
                audio=digest,
                created=time.time(),
            )
            if self.artifacts.size(self.audio_key(voice)) is None:
                self.artifacts.put_bytes(self.audio_key(voice), audio)
            self._save(voice)
        return voice, True

    def add_blend(self, name: str, formula: str, engine: str, owner: str | None = None) -> tuple[Voice, bool]:
        """Save a blend formula under a name; the same name and formula again is the same voice."""
        voice_id = _voice_id(f"{engine}\n{formula}", name, owner)
        with self._lock:
            existing = self._existing(name, voice_id, owner)
            if existing is not None:
                return existing, False
            voice = Voice(
                id=voice_id,
                kind="blend",
                name=name,
                blend=formula,
                engine=engine,
                owner=owner,
                created=time.time(),
            )
            self._save(voice)
        return voice, True

    def _save(self, voice: Voice) -> None:
        self.artifacts.put_bytes(self._key(f"{voice.id}.json"), json.dumps(voice.to_dict()).encode())

    def delete(self, key: str, viewer: Viewer = EVERYONE) -> Voice:
        """Remove a voice; its audio goes too unless another voice still uses it."""
        voice = self.require(key, viewer=viewer)
        with self._lock:
            self.artifacts.delete(self._key(f"{voice.id}.json"))
            self._records.pop(voice.id, None)
            if voice.kind == "cloned" and not any(
                v.audio == voice.audio for v in self.list() if v.id != voice.id
            ):
                self.artifacts.delete(self.audio_key(voice))
        return voice

    def audio_key(self, voice: Voice) -> str:
        """Where the voice's reference audio (canonical WAV) is in the artifact store."""
        return self._key(f"a_{voice.audio}.wav" if voice.audio else f"{voice.id}.wav")

    def audio_path(self, voice: Voice) -> Path:
        """The reference audio as a file on this machine: in the store's directory, or fetched once
        from shared storage into the cache."""
        key = self.audio_key(voice)
        local = self.artifacts.local_path(key)
        if local is not None:
            return local
        if self.cache is None:
            raise ValueError("a voice library on shared storage needs a local cache directory")
        cache, name = LocalStore(self.cache), key.rpartition("/")[2]
        if cache.size(name) is None:
            data = self.artifacts.get_bytes(key)
            if data is None:
                raise UnknownVoice(f"the audio of voice {voice.id!r} is no longer stored", param="voice")
            cache.put_bytes(name, data)  # written whole, then renamed: readers never see half
        return self.cache / name

    def reference(self, voice: Voice) -> Reference:
        """The voice's audio; keyed by its content, so voices sharing a recording share cached segments."""
        digest = voice.audio or voice.id
        return Reference(self.audio_path(voice), digest=digest, transcript=voice.prompt_text)


def _voice_id(content: str, name: str | None, owner: str | None = None) -> str:
    mine = f"\n{owner}" if owner else ""  # another key's same voice is another voice
    return "v_" + hashlib.sha256(f"{content}\n{name or ''}{mine}".encode()).hexdigest()[:16]
