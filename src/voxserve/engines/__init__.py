"""Engines: the protocol every speech engine implements, and the implementations, one per module.

Only the protocol is imported here. Each implementation module declares its
kind (``KIND``), and :mod:`voxserve.engines.registry` finds them; importing
them here would tie this package to the routing package that pools them.
"""

from voxserve.engines.base import (
    PCM,
    BatchEngine,
    Capabilities,
    Engine,
    EngineBase,
    Reference,
    SegmentRequest,
    VoiceInfo,
)

__all__ = [
    "PCM",
    "BatchEngine",
    "Capabilities",
    "Engine",
    "EngineBase",
    "Reference",
    "SegmentRequest",
    "VoiceInfo",
]
