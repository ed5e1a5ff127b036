"""One ``[[engines]]`` table: the fields every kind shares (the kind's own are in ``options``).

Engines are built from it, so it lives with them; the settings hold a list of
them. A kind's options are checked where engines are built
(:func:`voxserve.registry.check_engines`), not when the settings parse.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: How voxserve reaches an engine's server: HTTP(S), or gRPC (Triton's streaming).
SERVER_SCHEMES = ("http", "https", "grpc")
#: An engine's name: what clients ask for, and a directory under ``data_dir/engines``.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _valid_host_and_port(url: str) -> bool:
    """A host name that encodes (no empty labels), a port in range, no blanks."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
        (parts.hostname or "").encode("idna")
    except (ValueError, UnicodeError):
        return False
    return bool(parts.hostname) and port_ok and not any(c.isspace() for c in url)


class EngineSettings(BaseModel):
    """One engine to load. ``kind`` picks the implementation, ``name`` is what clients ask for.

    Remote kinds run as a pool over ``instances`` (``url`` is one instance)
    and ``backup`` instances that take traffic only when no primary is healthy. A key it does not
    know is refused (a typo would otherwise be dropped without a word).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="what clients ask for (model); it names a directory too")
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
    warm_up: bool = Field(
        default=True,
        description="an engine in this process renders a tiny text on each model instance as it "
        "loads, so no first request pays for lazy setup and its pace is known; false loads quicker",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="the kind's own settings, checked against its options model"
    )

    @field_validator("url", "instances", "backup")
    @classmethod
    def _a_server(cls, given: str | list[str] | None) -> str | list[str] | None:
        """A server's address: ``http(s)://`` or ``grpc://``, a host and a valid port. ``127.0.0.1:50000``
        alone would be read as a scheme ``127.0.0.1`` and never connect; a password in it would
        show wherever the URL does (``/v1/engines``, metrics, errors)."""
        for url in [given] if isinstance(given, str) else given or []:
            parts = urlsplit(url)
            if not parts.scheme or not parts.netloc:
                raise ValueError(
                    f"needs a scheme and a host, such as 'http://{url.split('://')[-1] or 'host:port'}'"
                )
            if parts.scheme not in SERVER_SCHEMES:
                raise ValueError(f"{url!r}: the scheme is one of {', '.join(SERVER_SCHEMES)}")
            if not _valid_host_and_port(url):
                raise ValueError(f"{url!r} is not a valid host and port")
            if parts.username is not None or parts.password is not None:
                raise ValueError(
                    "no user or password in the URL (it is shown in /v1/engines and the metrics); "
                    "give the kind's api_key option instead"
                )
        return given

    @field_validator("name")
    @classmethod
    def _a_plain_name(cls, name: str) -> str:
        if not NAME.fullmatch(name):
            raise ValueError("1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return name

    @property
    def urls(self) -> list[str]:
        return [*([self.url] if self.url else []), *self.instances]

    @property
    def fixed_concurrency(self) -> int | None:
        return self.max_concurrency if isinstance(self.max_concurrency, int) else None
