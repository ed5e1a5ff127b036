"""EmotiVoice through its OpenAI-style server (``openaiapi.py``, checked against
netease-youdao/EmotiVoice@bc2de8c9eb1121237958ef154cb171e7faefc769).

``POST /v1/audio/speech`` with JSON ``input``, ``voice`` (a speaker id such
as ``8051``), ``prompt`` (the emotion or style in words, e.g. "非常开心"),
``language`` (``zh_us``), ``model`` (``emoti-voice``), ``response_format``,
``speed``. It answers with a whole file; voxserve asks for WAV (16 kHz).

``prompt`` is free text: upstream's README writes it in English ("Happy"),
its demo page in Chinese (开心, 悲伤), and deployments describe styles in
sentences ("开心中带点讽刺"). voxserve's emotion labels become the Chinese
word the style encoder knows (:data:`EMOTION_WORDS`); any other ``emotion``
(the engine's own words, a description) goes as it is; without one,
``instructions`` go as they are. A bare 500 (an unknown speaker id, a word
its phoneme table lacks) is that input's failure, not the server's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from pydantic import Field

from voxserve.engines.remote import Call, RemoteEngine, RemoteOptions, remote_kind, whole_file
from voxserve.values import PCM, Capabilities, SegmentRequest, voices_named

#: voxserve's emotion names → the words EmotiVoice's Chinese style encoder was trained on
#: (netease-youdao/EmotiVoice@bc2de8c, README and ``openaiapi.py``'s ``prompt``).
EMOTION_WORDS = {
    "neutral": "普通",
    "angry": "生气",
    "happy": "开心",
    "surprised": "惊讶",
    "sad": "悲伤",
    "disgusted": "厌恶",
    "fearful": "恐惧",
}
EMOTIONS = frozenset(EMOTION_WORDS)


class EmotiVoiceOptions(RemoteOptions):
    voices: list[str] = Field(default=["8051"], min_length=1, description="speaker ids")
    sample_rate: int = Field(default=16000, gt=0)


class EmotiVoiceEngine(RemoteEngine):
    def __init__(self, name: str, client: httpx.AsyncClient, options: EmotiVoiceOptions) -> None:
        capabilities = Capabilities(
            languages=frozenset({"zh", "en"}),
            voices=voices_named(name, options.voices, ("zh", "en")),
            sample_rate=options.sample_rate,
            max_segment_chars=options.max_segment_chars,
            emotions=EMOTIONS,
            free_emotions=True,
            instructions=True,
            native_speed=(0.5, 2.0),
            whole_sentences=True,
        )
        super().__init__(name, client, capabilities)

    def call(self, request: SegmentRequest) -> Call:
        body = {
            "input": request.text,
            "voice": request.voice,
            "prompt": self._prompt(request),
            "language": "zh_us",
            "model": "emoti-voice",
            "response_format": "wav",
            "speed": request.speed,
        }
        return Call("/v1/audio/speech", json=body)

    @staticmethod
    def _prompt(request: SegmentRequest) -> str:
        """The style in words: a label as the word the encoder knows, anything else as it is."""
        if request.emotion:
            return EMOTION_WORDS.get(request.emotion.lower(), request.emotion)
        return request.instructions or ""

    def decode(self, response: httpx.Response) -> AsyncIterator[PCM]:
        return whole_file(response, self.name, self.capabilities.sample_rate)


KIND = remote_kind("emotivoice", EmotiVoiceEngine, EmotiVoiceOptions, "EmotiVoice's OpenAI-style server")
