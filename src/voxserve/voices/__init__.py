"""Voices beyond each engine's own: cloned from reference audio, or blended, kept in a library."""

from voxserve.voices.library import Voice, VoiceLibrary
from voxserve.voices.reference import REFERENCE_RATE, CheckedReference, check_reference

__all__ = ["REFERENCE_RATE", "CheckedReference", "Voice", "VoiceLibrary", "check_reference"]
