"""One ``[[engines]]`` table: the fields every kind shares (the kind's own are in ``options``).

Engines are built from it, so it lives with them; the settings hold a list of
them. A kind's options are checked where engines are built
(:func:`voxserve.registry.check_engines`), not when the settings parse.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EngineSettings(BaseModel):
    """One engine to load. ``kind`` picks the implementation, ``name`` is what clients ask for.

    Remote kinds run as a pool over ``instances`` (``url`` is one instance)
    and ``backup`` instances that take traffic only when no primary is healthy. A key it does not
    know is refused (a typo would otherwise be dropped without a word).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    url: str | None = Field(default=None, description="base URL of a remote engine's server (one instance)")
    instances: list[str] = Field(default_factory=list, description="base URLs of a remote engine's instances")
    backup: list[str] = Field(default_factory=list, description="used only when no instance is healthy")
    max_concurrency: int | Literal["auto"] | None = Field(
        default=None, description="per instance; 'auto' (remote default) finds it from latency and errors"
    )
    read_timeout: float = Field(default=300.0, gt=0, description="seconds a remote engine may stay silent")
    queue_timeout: float = Field(
        default=30.0, gt=0, description="longest wait for a free instance (embedded: 503 busy after it)"
    )
    max_queue: int = Field(default=1000, ge=1)
    attempts: int = Field(default=3, ge=1, le=10, description="tries per segment, on other instances")
    health_interval: float = Field(default=5.0, gt=0)
    health_timeout: float = Field(default=2.0, gt=0)
    failures_to_eject: int = Field(default=3, ge=1)
    successes_to_return: int = Field(default=2, ge=1)
    threads: int | None = Field(default=None, ge=1, description="inference threads (default: cores)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="the kind's own settings, checked against its options model"
    )

    @field_validator("url", "instances", "backup")
    @classmethod
    def _with_scheme(cls, given: str | list[str] | None) -> str | list[str] | None:
        """A server's address names its scheme and host: ``127.0.0.1:50000`` alone would be read as
        a scheme ``127.0.0.1`` (or a path) and never connect."""
        for url in [given] if isinstance(given, str) else given or []:
            parts = urlsplit(url)
            if not parts.scheme or not parts.netloc:
                raise ValueError(f"needs a scheme and a host, such as 'http://{url.split('://')[-1]}'")
        return given

    @property
    def urls(self) -> list[str]:
        return [*([self.url] if self.url else []), *self.instances]

    @property
    def fixed_concurrency(self) -> int | None:
        return self.max_concurrency if isinstance(self.max_concurrency, int) else None
