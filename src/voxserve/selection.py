"""Which engine, and which of its voices, serve a request: decided here and nowhere else.

Planning, the voice routes (is a name an engine's own, which engine a blend
belongs to) and the catalog (models, built-in voices, languages) all ask
this module, so a name means the same thing at every door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voxserve.config import AUTO_MODEL, DEFAULT_VOICE, Settings, voices_for
from voxserve.engines.base import Engine
from voxserve.errors import CapabilityMissing, InvalidRequest, UnknownModel, UnknownVoice
from voxserve.kokoro_names import NAME as KOKORO_NAME
from voxserve.kokoro_names import gender_of
from voxserve.request import SpeechRequest
from voxserve.text import is_speakable, language_code, languages_in
from voxserve.text.markup import has_pronunciations, marked_language, strip_marks
from voxserve.values import Reference
from voxserve.voices import EVERYONE, Viewer, Voice, VoiceLibrary
from voxserve.voices.blend import blend_parts_known, is_blend, parse_blend


@dataclass(frozen=True)
class ChosenVoice:
    """The voice a request gets, decided once here; what the engine, the client, the logs and the
    metrics are told all come from it."""

    #: what the engine is told: one of its voices, or a blend formula of them
    id: str
    #: a blend's parts and weights, parsed once (the engine mixes these)
    mix: tuple[tuple[str, float], ...] = ()
    #: a cloned voice's recording (the engine's default voice speaks with it)
    reference: Reference | None = None
    #: the library voice used, by id (a job keeps this, so its worker finds exactly that voice)
    library_id: str | None = None
    #: that library voice's name, if it has one
    library_name: str | None = None

    @property
    def name(self) -> str:
        """What the client knows the voice as: the library voice's name (else its id), or ``id``."""
        return self.library_name or self.library_id or self.id

    @property
    def metric_name(self) -> str:
        """The name in metrics: library voices are the users' own and unbounded, so one label."""
        return "library" if self.library_id else self.id


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
        #: every voice some alias names: an engine with none of them is one the aliases do not know
        self._aliased_voices = {
            voice
            for target in settings.voice_aliases.values()
            for voices in (target.values() if isinstance(target, dict) else [target])
            for voice in ([voices] if isinstance(voices, str) else voices)
        }

    @property
    def languages(self) -> list[str]:
        """Every language some engine here speaks."""
        return sorted(set().union(*(engine.capabilities.languages for engine in self.engines.values())))

    def is_builtin(self, name: str) -> bool:
        """An engine's own voice or an alias of one (not a name the library may take)."""
        return self.is_alias(name) or any(engine.capabilities.voice(name) for engine in self.engines.values())

    def is_alias(self, name: str) -> bool:
        """An OpenAI voice name, a configured alias, or a Kokoro-FastAPI voice name."""
        return name.lower() in self.settings.voice_aliases or KOKORO_NAME.fullmatch(name) is not None

    def alias_voices(self, name: str, language: str) -> list[str]:
        """The voices an alias stands for in ``language``, best first (empty: the engine's default).

        A Kokoro-FastAPI name that no engine here has stands for the most intelligible voices of
        its gender, as OpenAI's names do. A table without the language (nor ``"*"``) leaves it to
        ``default``'s voices of that language, so a configured alias never reads a language it
        does not list with a voice of another.
        """
        target = self.settings.voice_aliases.get(name.lower())
        if target is None:
            if not KOKORO_NAME.fullmatch(name):
                return []
            target = voices_for(gender_of(name))
        if isinstance(target, str):
            return [target]
        chosen = target.get(language, target.get("*"))
        if chosen is None and name.lower() != DEFAULT_VOICE:
            return self.alias_voices(DEFAULT_VOICE, language)
        if chosen is None:  # a configured default without the language: the measured one's
            chosen = voices_for(None).get(language, [])
        return [chosen] if isinstance(chosen, str) else list(chosen)

    def blend_engine(self, formula: str, engine: str | None) -> str:
        """The engine a blend belongs to: the one named, else the first that blends and has every part."""
        if not is_blend(formula):
            raise InvalidRequest("a blend joins voices with '+', like 'a(2)+b(1)'", param="blend")
        try:
            names = [part for part, _ in parse_blend(formula)]
        except InvalidRequest as exc:
            raise InvalidRequest(exc.message, param="blend") from None
        engines = self.engines
        candidates = [engines[engine]] if engine in engines else [] if engine else list(engines.values())
        for candidate in candidates:
            caps = candidate.capabilities
            if caps.blends and all(caps.voice(part) for part in names):
                return candidate.name
        self._check_blend_parts(formula, candidates, "blend")
        raise InvalidRequest(
            f"no engine{' ' + repr(engine) if engine else ''} can blend {', '.join(names)}; "
            "blends mix one engine's own voices (GET /v1/audio/voices)",
            param="blend",
        )

    @staticmethod
    def _check_blend_parts(formula: str, engines: list[Engine], param: str) -> None:
        """A blend's first part that no engine able to blend has is a 404 naming that part."""
        blending = [engine for engine in engines if engine.capabilities.blends]
        for name, _ in parse_blend(formula):
            if blending and not any(engine.capabilities.voice(name) for engine in blending):
                available = sorted({voice.id for engine in blending for voice in engine.capabilities.voices})
                raise UnknownVoice(
                    f"voice {name!r} in blend {formula!r} is not known; "
                    f"blends mix one engine's own voices: {', '.join(available)}",
                    param=param,
                )

    def can_clone(self) -> bool:
        """Whether some engine here can speak with a voice cloned from reference audio."""
        return any(engine.capabilities.cloning for engine in self.engines.values())

    def pinned_engine(self, model: str | None) -> Engine | None:
        """The engine a request's ``model`` names (through ``model_aliases``); None when it names
        none or ``auto`` (OpenAI's model names by default): language and voice then choose."""
        name = self.settings.model_aliases.get(model, model) if model else AUTO_MODEL
        if name == AUTO_MODEL:
            return None
        engine = self.engines.get(name)
        if engine is None:
            known = sorted([*self.engines, *self.settings.model_aliases, AUTO_MODEL])
            raise UnknownModel(
                f"model {model!r} does not exist; available: {', '.join(known)}", param="model"
            )
        return engine

    def require_cloning(self, model: str | None, param: str) -> None:
        """Refuse reference audio up front when no engine (or not the named one) can clone with it."""
        pinned = self.pinned_engine(model)
        name = pinned.name if pinned is not None else None
        engines = [pinned] if pinned is not None else list(self.engines.values())
        if not any(engine.capabilities.cloning for engine in engines):
            which = f"engine {name!r} cannot" if name in self.engines else "the engines here cannot"
            raise CapabilityMissing(
                f"{which} clone voices from reference audio; use an engine with cloning", param=param
            )

    def library_voice(self, name: str | None, viewer: Viewer = EVERYONE) -> Voice | None:
        """The library voice a request names (one ``viewer`` may use), if it names one rather than an
        engine's own voice."""
        if not name or is_blend(name) or self.is_alias(name):
            return None
        if any(engine.capabilities.voice(name) for engine in self.engines.values()):
            return None
        return self.voices.get(name, viewer)

    def choose(
        self, request: SpeechRequest, text: str, viewer: Viewer = EVERYONE
    ) -> tuple[Engine, ChosenVoice]:
        """The engine and the voice for a request (``text``: its input with SSML expanded): a library
        voice (a clone, or a saved blend), an engine's voice or blend, an alias, or the default."""
        library_voice = self.library_voice(request.voice, viewer)
        if library_voice is not None and library_voice.kind == "cloned":
            engine, voice = self.engine_and_voice(request, None, True, text)
            reference = self.voices.reference(library_voice)
            return engine, ChosenVoice(voice, (), reference, library_voice.id, library_voice.name)
        wanted = library_voice.blend if library_voice is not None and library_voice.blend else request.voice
        engine, voice = self.engine_and_voice(request, wanted, False, text)
        mix = tuple(parse_blend(voice)) if is_blend(voice) else ()
        if library_voice is None:
            return engine, ChosenVoice(voice, mix)
        return engine, ChosenVoice(voice, mix, None, library_voice.id, library_voice.name)

    def engine_and_voice(
        self, request: SpeechRequest, wanted: str | None, cloning: bool, text: str
    ) -> tuple[Engine, str]:
        """The engine and its voice id: ``wanted`` (an engine voice or a blend formula), or for a
        clone the engine's default (the reference carries the voice)."""
        engine = self.pinned_engine(request.model)
        if engine is not None:
            if cloning:
                self.require_cloning(request.model, "voice")
            candidates = [engine]
        else:
            candidates = self.capable_engines(request, cloning, text)
        if cloning:
            return candidates[0], candidates[0].capabilities.default_voice
        if not wanted:
            return self._aliased(
                DEFAULT_VOICE,
                self.spoken_language(request, text),
                self._for_an_alias(request, text, candidates),
            )
        for engine in candidates:
            voice = self.voice_on(engine, wanted)
            if voice:
                return engine, voice
        if self.is_alias(wanted):
            return self._aliased(
                wanted, self.spoken_language(request, text), self._for_an_alias(request, text, candidates)
            )
        if is_blend(wanted):
            self._check_blend_parts(wanted, candidates, "voice")
        available = sorted(v.id for e in candidates for v in e.capabilities.voices)
        raise UnknownVoice(
            f"voice {request.voice!r} is not known"
            + (f" to model {request.model!r}" if request.model else "")
            + f"; available: {', '.join(available)}, a voice from the library (GET /v1/voices), "
            "or an OpenAI voice name such as 'alloy'",
            param="voice",
        )

    def _aliased(self, alias: str, language: str, candidates: list[Engine]) -> tuple[Engine, str]:
        """The first of the alias's voices some candidate has, else the first candidate's default."""
        for target in self.alias_voices(alias, language):
            for engine in candidates:
                if engine.capabilities.voice(target):
                    return engine, target
        return candidates[0], candidates[0].capabilities.default_voice

    def native_voice(self, wanted: str | None, engine: Engine, language: str) -> str | None:
        """The voice that reads ``language`` on ``engine`` when the request named no voice of its
        own (none, or an alias): a text's passages in another language than its main one are read
        by a native speaker of theirs. None: the request's voice reads it."""
        if wanted and (not self.is_alias(wanted) or self.voice_on(engine, wanted)):
            return None
        targets = self.alias_voices(wanted or DEFAULT_VOICE, language)
        return next((target for target in targets if engine.capabilities.voice(target)), None)

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
        languages = self._languages(request, text)
        capable = [engine for engine in ordered if languages <= engine.capabilities.languages]
        if not capable:
            raise CapabilityMissing(
                f"no engine here speaks {', '.join(sorted(languages))}",
                param="language" if request.language else "input",
            )

        def ignores(engine: Engine) -> int:
            return len(ignored_options(request, engine, text))

        return sorted(capable, key=ignores)

    def _for_an_alias(self, request: SpeechRequest, text: str, candidates: list[Engine]) -> list[Engine]:
        """The engines an alias (or no voice) may pick from. A default engine that the aliases do
        not know (none of its voices is named by one: an engine of the operator's own, such as
        CosyVoice) takes every request naming no model that it serves as well as any, with its
        own voices; otherwise the aliases' voices decide (hibari's ``heart`` reads English when
        Kokoro lacks its voice set)."""
        default = self.engines.get(self.settings.default_engine)
        if default not in candidates or any(
            v.id in self._aliased_voices for v in default.capabilities.voices
        ):
            return candidates
        least = min(len(ignored_options(request, engine, text)) for engine in candidates)
        return [default] if len(ignored_options(request, default, text)) == least else candidates

    @staticmethod
    def _languages(request: SpeechRequest, text: str) -> set[str]:
        """The languages a request needs: the one it names, else those its text is written in."""
        if request.language:
            return {language_code(request.language)}
        spoken = strip_marks(text)
        return languages_in(spoken) if is_speakable(spoken) else {marked_language(text)}

    def spoken_language(self, request: SpeechRequest, text: str) -> str:
        """The language an alias picks its voice by: the one named, else the text's (Chinese or
        Japanese over the English words inside them)."""
        languages = self._languages(request, text)
        for language in (*sorted(languages - {"en"}), "en"):
            if language in languages:
                return language
        return "en"

    @staticmethod
    def voice_on(engine: Engine, name: str) -> str | None:
        """The engine's voice for a name: its own, or a blend of its own."""
        caps = engine.capabilities
        if caps.voice(name):
            return name
        if is_blend(name):
            return name if caps.blends and blend_parts_known(name, caps) else None
        return None
