"""Reference audio coming in: uploaded, named by path or URL; checked, normalized, stored.

Every door that takes reference audio (``/v1/voices``, ``/tts``,
``reference_audio`` on speech and jobs) comes through here, so the checks
and the limits are the same whichever it is.
"""

from __future__ import annotations

import asyncio

from voxserve.config import ReferenceSettings
from voxserve.errors import InvalidRequest
from voxserve.voices.library import Voice, VoiceLibrary
from voxserve.voices.reference import check_reference
from voxserve.voices.sources import fetch_allowed_url, read_allowed_path


class ReferenceIngest:
    """Checks reference audio against the settings' rules and stores it in the library."""

    def __init__(self, library: VoiceLibrary, settings: ReferenceSettings) -> None:
        self.library = library
        self.settings = settings

    async def add(
        self,
        data: bytes,
        name: str | None = None,
        prompt_text: str | None = None,
        language: str | None = None,
        owner: str | None = None,
    ) -> tuple[Voice, bool]:
        """Check, normalize and store reference audio (``owner``'s); (the voice, whether it is new)."""
        checked = await asyncio.to_thread(check_reference, data, self.settings)
        return self.library.add_reference(
            checked, name=name, prompt_text=prompt_text, language=language, owner=owner
        )

    async def named(
        self, source: str, param: str, prompt_text: str | None = None, owner: str | None = None
    ) -> Voice:
        """A reference given by path (inside ``references.dirs``) or URL (an allowed host), stored."""
        rules = self.settings
        is_url = source.startswith(("http://", "https://"))
        if "://" in source and not is_url:
            raise InvalidRequest(f"{param}: only http and https URLs are fetched", param=param)
        if is_url:
            data = await fetch_allowed_url(
                source,
                rules.url_hosts,
                rules.url_private,
                rules.max_bytes,
                param=param,
                deadline=rules.fetch_seconds,
            )
        else:
            data = await asyncio.to_thread(read_allowed_path, source, rules.dirs, rules.max_bytes, param)
        voice, _ = await self.add(data, prompt_text=prompt_text, owner=owner)
        return voice
