"""voxserve: a self-hosted speech synthesis service.

What other code may use is exported here, from modules that are otherwise
voxserve's own business: the settings and the application, and everything an
engine author needs (docs/engines.md#adding-an-engine). Anything not listed
in ``__all__`` may change without notice.
"""

from voxserve.config import EngineSettings, Settings, load_settings
from voxserve.engines.base import (
    PCM,
    BatchEngine,
    Capabilities,
    Engine,
    EngineBase,
    Reference,
    SegmentRequest,
    VoiceInfo,
    voices_named,
)
from voxserve.engines.embedded import EmbeddedEngine, Waiting
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions, NoOptions
from voxserve.engines.remote import RemoteEngine, RemoteOptions, remote_kind
from voxserve.errors import (
    EngineError,
    EngineFailed,
    EngineOverloaded,
    EngineRejected,
    EngineTimeout,
    EngineUnavailable,
    VoxserveError,
)

__version__ = "0.1.0"

__all__ = [
    "PCM",
    "BatchEngine",
    "BuildContext",
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
    "Settings",
    "VoiceInfo",
    "VoxserveError",
    "Waiting",
    "__version__",
    "load_settings",
    "remote_kind",
    "voices_named",
]
