"""Audio: PCM operations, tempo/pitch effects and streaming encoders."""

from voxserve.audio.effects import change_tempo_and_pitch, resample
from voxserve.audio.encoders import FORMATS, AudioFormat, StreamEncoder
from voxserve.audio.pcm import duration, fade, fade_in, fade_out, fade_samples, level, silence, to_s16le

__all__ = [
    "FORMATS",
    "AudioFormat",
    "StreamEncoder",
    "change_tempo_and_pitch",
    "duration",
    "fade",
    "fade_in",
    "fade_out",
    "fade_samples",
    "level",
    "resample",
    "silence",
    "to_s16le",
]
