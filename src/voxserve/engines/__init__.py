"""Engines: the protocol every speech engine implements, and the implementations.

Building engines from settings is :mod:`voxserve.engines.registry`'s job; it is
not imported here, because it needs :mod:`voxserve.routing`, which needs this
package's protocol: importing either first must work.
"""

from voxserve.engines.base import PCM, Capabilities, Engine, SegmentRequest, VoiceInfo
from voxserve.engines.fake import FakeEngine

__all__ = ["PCM", "Capabilities", "Engine", "FakeEngine", "SegmentRequest", "VoiceInfo"]
