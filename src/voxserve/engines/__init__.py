"""Engines: the protocol every speech engine implements, and the implementations."""

from voxserve.engines.base import PCM, Capabilities, Engine, SegmentRequest, VoiceInfo
from voxserve.engines.fake import FakeEngine
from voxserve.engines.registry import KINDS, build_engine

__all__ = [
    "KINDS",
    "PCM",
    "Capabilities",
    "Engine",
    "FakeEngine",
    "SegmentRequest",
    "VoiceInfo",
    "build_engine",
]
