"""A Pipecat TTS service on voxserve's speech stream (``WS /v1/audio/speech/stream``).

Pipecat gathers the LLM's tokens into sentences and asks the service for each; this one sends the
sentence over voxserve's speech stream and passes its PCM on as it arrives. When the user barges
in, Pipecat stops the sentence's generator: the socket closes, and voxserve stops making that
sentence (the engine finishes at most the segment it was on) and frees its slot.

Needs ``pipecat-ai`` (``pip install "voxserve-client[pipecat]"``); the rest of the SDK does not.

.. code-block:: python

    tts = VoxserveTTSService(url="ws://127.0.0.1:8000", voice="af_heart", api_key="vx_...")
    pipeline = Pipeline([transport.input(), stt, llm, tts, transport.output()])
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import websockets
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

STREAM_PATH = "/v1/audio/speech/stream"


class VoxserveTTSService(TTSService):
    """Speech from a voxserve server, sentence by sentence, as 16-bit mono PCM at the pipeline's rate."""

    def __init__(
        self,
        *,
        url: str = "ws://127.0.0.1:8000",
        voice: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        speed: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=model, voice=voice, language=None),
            **kwargs,
        )
        self._endpoint = url.rstrip("/") + STREAM_PATH
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._speed = speed

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """One sentence: its audio frames as voxserve sends them; an error frame if it is refused."""
        options = {
            "type": "options",
            "voice": self._settings.voice,
            "model": self._settings.model,
            "speed": self._speed,
            "response_format": "pcm",
            "sample_rate": self.sample_rate,
        }
        await self.start_tts_usage_metrics(text)
        async with websockets.connect(self._endpoint, additional_headers=self._headers) as socket:
            await socket.send(json.dumps({key: value for key, value in options.items() if value is not None}))
            await socket.send(json.dumps({"type": "text", "text": text}))
            await socket.send(json.dumps({"type": "end"}))
            async for message in socket:
                if isinstance(message, bytes):
                    await self.stop_ttfb_metrics()
                    yield TTSAudioRawFrame(message, self.sample_rate, 1, context_id=context_id)
                    continue
                event = json.loads(message)
                if event["type"] == "error":
                    yield ErrorFrame(error=f"voxserve: {event['error']['message']}")
                elif event["type"] == "done":
                    return
