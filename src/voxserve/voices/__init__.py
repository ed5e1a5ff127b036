"""Voices beyond each engine's own: cloned from reference audio, or blended, kept in a library."""

from voxserve.voices.library import EVERYONE, Viewer, Voice, VoiceLibrary
from voxserve.voices.reference import REFERENCE_RATE, CheckedReference, check_reference

__all__ = [
    "EVERYONE",
    "REFERENCE_RATE",
    "CheckedReference",
    "Viewer",
    "Voice",
    "VoiceLibrary",
    "check_reference",
]
