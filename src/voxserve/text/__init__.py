"""Text: language detection, normalization, segmentation within an engine's limit."""

from voxserve.text.language import SUPPORTED, detect_language, is_speakable, languages_in
from voxserve.text.normalize import TextNormalizer
from voxserve.text.segment import fit, sentences, split_text

__all__ = [
    "SUPPORTED",
    "TextNormalizer",
    "detect_language",
    "fit",
    "is_speakable",
    "languages_in",
    "sentences",
    "split_text",
]
