"""Text moderation before synthesis: a blocklist file, an HTTP service, or both.

The blocklist has one entry a line: a word or phrase (matched anywhere,
ignoring case) or a ``/regular expression/``; ``#`` starts a comment. The
service gets ``POST {"input": text}`` and answers ``{"allowed": bool,
"reason": str}``. A refusal is a 422 ``moderated`` with the reason, before
any engine time or charge; a service that does not answer in time refuses
too (503), so nothing unchecked gets through.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from voxserve.config import ModerationSettings
from voxserve.errors import Moderated, ModerationUnavailable


def load_blocklist(path: Path) -> re.Pattern[str] | None:
    """One pattern for every entry of the file (None for a file with none)."""
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if len(entry) > 2 and entry.startswith("/") and entry.endswith("/"):
            patterns.append(f"(?:{entry[1:-1]})")
        else:
            patterns.append(re.escape(entry))
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


class Moderation:
    def __init__(self, settings: ModerationSettings) -> None:
        self.settings = settings
        self._blocklist = load_blocklist(settings.blocklist) if settings.blocklist else None
        self._service = (httpx.AsyncClient(timeout=settings.timeout), settings.url) if settings.url else None

    async def check(self, text: str, param: str = "input") -> None:
        """Return if the text may be spoken; Moderated (422) with the reason if not."""
        if self._blocklist is not None:
            found = await asyncio.to_thread(self._blocklist.search, text)
            if found:
                raise Moderated(
                    f"{param} contains {found.group(0)!r}, which the blocklist refuses", param=param
                )
        if self._service is not None:
            await self._ask(*self._service, text, param)

    @staticmethod
    async def _ask(client: httpx.AsyncClient, url: str, text: str, param: str) -> None:
        try:
            response = await client.post(url, json={"input": text})
            response.raise_for_status()
            verdict = response.json()
            allowed = bool(verdict["allowed"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise ModerationUnavailable(
                f"the moderation service did not answer ({type(exc).__name__})"
            ) from exc
        if not allowed:
            reason = str(verdict.get("reason") or "refused")[:300]
            raise Moderated(f"{param} was refused by moderation: {reason}", param=param)

    async def close(self) -> None:
        if self._service is not None:
            await self._service[0].aclose()
