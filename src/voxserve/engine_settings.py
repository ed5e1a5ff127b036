"""One ``[[engines]]`` table: the fields every kind shares (the kind's own are in ``options``).

Engines are built from it, so it lives with them; the settings hold a list of
them. A kind's options are checked where engines are built
(:func:`voxserve.registry.check_engines`), not when the settings parse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class EngineSettings(BaseModel):
    """One engine to load. ``kind`` picks the implementation, ``name`` is what clients ask for.

    Remote kinds run as a pool over ``instances`` (``url`` is one instance)
    and ``backup`` instances that take traffic only when no primary is healthy.
    """

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

    @property
    def urls(self) -> list[str]:
        return [*([self.url] if self.url else []), *self.instances]

    @property
    def fixed_concurrency(self) -> int | None:
        return self.max_concurrency if isinstance(self.max_concurrency, int) else None
