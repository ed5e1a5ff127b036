"""Shared machinery for engines that run a model inside this process.

Models are blocking CPU work. They run in a thread pool that the application
sizes to the machine's cores, never on the event loop, and each engine bounds
how many of its calls run at once. A segment is the unit of work, so a
cancelled request stops before its next segment.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from concurrent.futures import Executor

from voxserve.engines.base import PCM, Capabilities, SegmentRequest
from voxserve.errors import EngineError, NotReady

log = logging.getLogger(__name__)


class EmbeddedEngine(ABC):
    """Base of in-process engines: bounded, off-loop execution of ``_render``."""

    name: str

    def __init__(self, name: str, executor: Executor, max_concurrency: int = 1) -> None:
        self.name = name
        self._executor = executor
        self._slots = asyncio.Semaphore(max_concurrency)
        self._ready = False

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def ready(self) -> bool:
        return self._ready

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)
        await loop.run_in_executor(self._executor, self._warm_up)
        self._ready = True
        log.info("engine %s loaded", self.name)

    async def synthesize(self, request: SegmentRequest) -> AsyncIterator[PCM]:
        if not self._ready:
            raise NotReady(f"engine {self.name!r} is still loading")
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                audio = await loop.run_in_executor(self._executor, self._render, request)
            except (ValueError, RuntimeError) as exc:
                raise EngineError(f"engine {self.name!r} failed: {exc}") from exc
        yield audio

    async def close(self) -> None:
        self._ready = False

    @abstractmethod
    def _load(self) -> None:
        """Load the model (blocking; runs in the pool)."""

    @abstractmethod
    def _warm_up(self) -> None:
        """Run one tiny synthesis so the first request does not pay for lazy setup."""

    @abstractmethod
    def _render(self, request: SegmentRequest) -> PCM:
        """Synthesize one segment (blocking; runs in the pool)."""
