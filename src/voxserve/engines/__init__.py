"""Engines: the protocol every speech engine implements, and the implementations, one per module.

What an engine author may use is exported here (docs/engines.md#adding-an-engine);
anything else may change without notice. Each implementation module declares
its kind (``KIND``), and :mod:`voxserve.registry` finds them.
"""

from voxserve.engine_settings import EngineSettings
from voxserve.engines.base import BatchEngine, Engine, EngineBase
from voxserve.engines.embedded import EmbeddedEngine, Waiting
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions, NoOptions, Servers
from voxserve.engines.remote import Call, RemoteEngine, RemoteOptions, remote_kind, whole_file
from voxserve.errors import (
    EngineError,
    EngineFailed,
    EngineOverloaded,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    VoxserveError,
)
from voxserve.values import PCM, Capabilities, Reference, SegmentRequest, VoiceInfo, voices_named

__all__ = [
    "PCM",
    "BatchEngine",
    "BuildContext",
    "Call",
    "Capabilities",
    "EmbeddedEngine",
    "Engine",
    "EngineBase",
    "EngineError",
    "EngineFailed",
    "EngineKind",
    "EngineOptions",
    "EngineOverloaded",
    "EngineRejected",
    "EngineSettings",
    "EngineTimeout",
    "EngineUnavailable",
    "NoOptions",
    "Reference",
    "RemoteEngine",
    "RemoteOptions",
    "SegmentRequest",
    "Servers",
    "VoiceInfo",
    "VoxserveError",
    "Waiting",
    "remote_kind",
    "voices_named",
    "whole_file",
]
