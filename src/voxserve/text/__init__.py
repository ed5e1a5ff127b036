"""Text: language detection, normalization, segmentation within an engine's limit."""

from voxserve.text.language import detect_language, is_speakable, language_code, languages_in
from voxserve.text.normalize import TextNormalizer
from voxserve.text.segment import complete_sentences, fit, lead, sentences, split_text

__all__ = [
    "TextNormalizer",
    "complete_sentences",
    "detect_language",
    "fit",
    "is_speakable",
    "language_code",
    "languages_in",
    "lead",
    "sentences",
    "split_text",
]
