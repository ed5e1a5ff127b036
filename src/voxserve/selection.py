"""Which engine, and which of its voices, serve a request: decided here and nowhere else.

Planning, the voice routes (is a name an engine's own, which engine a blend
belongs to) and the catalog (models, built-in voices, languages) all ask
this module, so a name means the same thing at every door.
"""

from __future__ import annotations

from collections.abc import Mapping

from voxserve.config import Settings
from voxserve.engines.base import Engine
from voxserve.errors import CapabilityMissing, InvalidRequest, UnknownModel, UnknownVoice
from voxserve.request import SpeechRequest
from voxserve.text import language_code, languages_in
from voxserve.text.markup import has_pronunciations, strip_marks
from voxserve.voices import EVERYONE, Viewer, Voice, VoiceLibrary
from voxserve.voices.blend import blend_parts_known, is_blend, parse_blend


def ignored_options(request: SpeechRequest, engine: Engine, text: str) -> tuple[str, ...]:
    """What the engine will not honour; ``text`` is the input with its SSML already expanded."""
    caps = engine.capabilities
    ignored = []
    if request.emotion and not caps.emotions:
        ignored.append("emotion")
    if request.instructions and not caps.instructions:
        ignored.append("instructions")
    if request.seed is not None and not caps.seeded:
        ignored.append("seed")
    if not caps.markup and has_pronunciations(text):
        ignored.append("markup")
    return tuple(ignored)


class Selection:
    """The engines, the voice aliases and the library, and the rules that pick among them."""

    def __init__(self, engines: Mapping[str, Engine], settings: Settings, voices: VoiceLibrary) -> None:
        self.engines = dict(engines)
        self.settings = settings
        self.voices = voices

    @property
    def languages(self) -> list[str]:
        """Every language some engine here speaks."""
        return sorted(set().union(*(engine.capabilities.languages for engine in self.engines.values())))

    def is_builtin(self, name: str) -> bool:
        """An engine's own voice or an alias of one (not a name the library may take)."""
        return name.lower() in self.settings.voice_aliases or any(
            engine.capabilities.voice(name) for engine in self.engines.values()
        )

    def blend_engine(self, formula: str, engine: str | None) -> str:
        """The engine a blend belongs to: the one named, else the first that blends and has every part."""
        if not is_blend(formula):
            raise InvalidRequest("a blend joins voices with '+', like 'a(2)+b(1)'", param="blend")
        names = [part for part, _ in parse_blend(formula)]
        engines = self.engines
        candidates = [engines[engine]] if engine in engines else [] if engine else list(engines.values())
        for candidate in candidates:
            caps = candidate.capabilities
            if caps.blends and all(caps.voice(part) for part in names):
                return candidate.name
        raise InvalidRequest(
            f"no engine{' ' + repr(engine) if engine else ''} can blend {', '.join(names)}; "
            "blends mix one engine's own voices (GET /v1/audio/voices)",
            param="blend",
        )

    def require_cloning(self, model: str | None, param: str) -> None:
        """Refuse reference audio up front when no engine (or not the named one) can clone with it."""
        name = self.settings.model_aliases.get(model, model) if model else None
        engines = [self.engines[name]] if name in self.engines else list(self.engines.values())
        if not any(engine.capabilities.cloning for engine in engines):
            which = f"engine {name!r} cannot" if name in self.engines else "the engines here cannot"
            raise CapabilityMissing(
                f"{which} clone voices from reference audio; use an engine with cloning", param=param
            )

    def library_voice(self, name: str | None, viewer: Viewer = EVERYONE) -> Voice | None:
        """The library voice a request names (one ``viewer`` may use), if it names one rather than an
        engine's own voice."""
        if not name or is_blend(name) or name.lower() in self.settings.voice_aliases:
            return None
        if any(engine.capabilities.voice(name) for engine in self.engines.values()):
            return None
        return self.voices.get(name, viewer)

    def engine_and_voice(
        self, request: SpeechRequest, wanted: str | None, cloning: bool, text: str
    ) -> tuple[Engine, str]:
        """The engine and its voice id: ``wanted`` (an engine voice or a blend formula), or for a
        clone the engine's default (the reference carries the voice)."""
        if request.model:
            name = self.settings.model_aliases.get(request.model, request.model)
            engine = self.engines.get(name)
            if engine is None:
                known = sorted([*self.engines, *self.settings.model_aliases])
                raise UnknownModel(
                    f"model {request.model!r} does not exist; available: {', '.join(known)}",
                    param="model",
                )
            if cloning:
                self.require_cloning(request.model, "voice")
            candidates = [engine]
        else:
            candidates = self.capable_engines(request, cloning, text)
        if cloning or not wanted:
            return candidates[0], candidates[0].capabilities.default_voice
        for engine in candidates:
            voice = self.voice_on(engine, wanted)
            if voice:
                return engine, voice
        available = sorted(v.id for e in candidates for v in e.capabilities.voices)
        raise UnknownVoice(
            f"voice {request.voice!r} is not known"
            + (f" to model {request.model!r}" if request.model else "")
            + f"; available: {', '.join(available)}, a voice from the library (GET /v1/voices), "
            "or an OpenAI voice name such as 'alloy'",
            param="voice",
        )

    def capable_engines(self, request: SpeechRequest, cloning: bool, text: str) -> list[Engine]:
        """Engines that can serve a request naming no model, the default first.

        Languages and cloning are requirements; engines that honour the
        request's emotion or instructions come before those that would ignore them.
        """
        default = self.engines.get(self.settings.default_engine)
        ordered = [*([default] if default else []), *(e for e in self.engines.values() if e is not default)]
        if cloning:
            ordered = [engine for engine in ordered if engine.capabilities.cloning]
            if not ordered:
                raise CapabilityMissing(
                    "the engines here cannot clone voices from reference audio; configure one that can",
                    param="voice",
                )
        languages = {language_code(request.language)} if request.language else languages_in(strip_marks(text))
        capable = [engine for engine in ordered if languages <= engine.capabilities.languages]
        if not capable:
            raise CapabilityMissing(
                f"no engine here speaks {', '.join(sorted(languages))}",
                param="language" if request.language else "input",
            )

        def ignores(engine: Engine) -> int:
            return len(ignored_options(request, engine, text))

        return sorted(capable, key=ignores)

    def voice_on(self, engine: Engine, name: str) -> str | None:
        """The engine's voice for a name: its own, a blend of its own, or an alias (else its default)."""
        caps = engine.capabilities
        if caps.voice(name):
            return name
        if is_blend(name):
            return name if caps.blends and blend_parts_known(name, caps) else None
        target = self.settings.voice_aliases.get(name.lower())
        if target is None:
            return None
        return target if caps.voice(target) else caps.default_voice
