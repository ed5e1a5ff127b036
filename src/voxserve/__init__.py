"""voxserve: a self-hosted speech synthesis service.

What other code may use is exported here, from modules that are otherwise
voxserve's own business: the settings and the application, and everything an
engine author needs (docs/engines.md#adding-an-engine). Anything not listed
in ``__all__`` may change without notice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each export lives. They are imported when first used, so ``import voxserve.client`` (or any
#: other submodule) does not load the engines, PyAV and ONNX Runtime with the package.
_EXPORTS = {
    "voxserve.config": ("EngineSettings", "Settings", "load_settings"),
    "voxserve.engines.base": ("PCM", "BatchEngine", "Capabilities", "Engine", "EngineBase", "Reference",
                              "SegmentRequest", "VoiceInfo", "voices_named"),
    "voxserve.engines.embedded": ("EmbeddedEngine", "Waiting"),
    "voxserve.engines.kind": ("BuildContext", "EngineKind", "EngineOptions", "NoOptions"),
    "voxserve.engines.remote": ("RemoteEngine", "RemoteOptions", "remote_kind"),
    "voxserve.errors": ("EngineError", "EngineFailed", "EngineOverloaded", "EngineRejected", "EngineTimeout",
                        "EngineUnavailable", "VoxserveError"),
}  # fmt: skip
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'voxserve' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


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
