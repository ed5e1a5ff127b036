"""``WS /v1/audio/speech/stream``: text deltas in (as an LLM writes them), audio out sentence by sentence.

What voice agents (LiveKit Agents, Pipecat) do with a streaming TTS service: send each delta as
it comes, get each sentence's audio as soon as the sentence is complete, flush at the end of a
turn, cancel when the user barges in. The messages (JSON text frames) are:

- in: ``options`` (first, optional: the speech request's fields but ``input``; ``response_format``
  is ``pcm`` unless named), ``text`` (a delta), ``flush`` (speak what is pending now, even an
  unfinished sentence), ``cancel`` (drop what is not spoken, stop the sentence being made), ``end``
  (flush, then close);
- out: ``sentence.start`` (index, text, format, sample rate), the sentence's audio as binary
  frames, ``sentence.end`` (its segments' times from the start of the stream's audio), ``flushed``,
  ``cancelled``, ``error`` (the same error object as HTTP's, with its status; the stream goes on),
  ``done`` (usage), after which the server closes with 1000.

Refusals at connect close with 4000 + the HTTP status (4401 no key, 4403 scope, 4429 a limit), as
the job socket does. A stream with nothing to say for ``text_streams.idle_seconds`` closes (1000),
and none stays open past ``text_streams.max_seconds`` (1008).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voxserve.api.auth import principal_of
from voxserve.api.text_streams import TextStream
from voxserve.client.outputs import ResponseFormat
from voxserve.errors import InvalidRequest, VoxserveError
from voxserve.pipeline import Plan
from voxserve.rendering import SegmentTime
from voxserve.request import SpeechOptions
from voxserve.services import Services

router = APIRouter()

MAX_MESSAGE_BYTES = 64 * 1024  # a text delta is a few words; a larger message is refused, unread
STREAM_FORMAT: ResponseFormat = "pcm"  # what agent frameworks play: 16-bit mono, joins seamlessly


class Options(SpeechOptions):
    type: Literal["options"]
    response_format: ResponseFormat = STREAM_FORMAT


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_BYTES)


class Flush(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["flush"]


class Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["cancel"]


class End(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["end"]


Message = Annotated[Options | Text | Flush | Cancel | End, Field(discriminator="type")]
MESSAGE = TypeAdapter[Message](Message)


def _parsed(raw: str | bytes | None) -> Message:
    """A client message, or InvalidRequest naming what is wrong with it."""
    if raw is None or isinstance(raw, bytes):
        raise InvalidRequest("messages are JSON text frames", param="message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidRequest(f"a message is at most {MAX_MESSAGE_BYTES} bytes", param="message")
    try:
        return MESSAGE.validate_python(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the message is not JSON: {exc.msg}", param="message") from None
    except RecursionError:
        raise InvalidRequest("the message nests too deeply", param="message") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"][1:]) or "type"
        raise InvalidRequest(f"{where}: {error['msg']}", param=where) from None


class SocketListener:
    """Sends a text stream's audio and events to the socket, one message at a time."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._sending = asyncio.Lock()

    async def send(self, event: dict[str, object]) -> None:
        async with self._sending:
            await self.websocket.send_json(event)

    async def begin(self, index: int, text: str, plan: Plan) -> None:
        await self.send(
            {
                "type": "sentence.start",
                "index": index,
                "text": text,
                "format": plan.audio_format.name,
                "sample_rate": plan.output_rate,
                "engine": ",".join(engine.name for engine in plan.engines),
                "voice": ",".join(plan.voice_names),
            }
        )

    async def audio(self, chunk: bytes) -> None:
        async with self._sending:
            await self.websocket.send_bytes(chunk)

    async def end(self, index: int, segments: list[SegmentTime]) -> None:
        await self.send({"type": "sentence.end", "index": index, "segments": [s.to_dict() for s in segments]})

    async def failed(self, error: VoxserveError) -> None:
        await self.send({"type": "error", "error": {**error.to_dict(), "status": error.status_code}})

    async def flushed(self, last: bool) -> None:
        await self.send({"type": "flushed"})


@router.websocket("/v1/audio/speech/stream")
async def speech_stream(websocket: WebSocket) -> None:
    """Text deltas in, each sentence's audio out as soon as the sentence is complete."""
    services: Services = websocket.app.state.services
    await websocket.accept()
    listener = SocketListener(websocket)
    try:
        principal = await principal_of(websocket, services)
        principal.require("speech")
        options = SpeechOptions(response_format=STREAM_FORMAT)
        stream = TextStream(services, principal, options, listener, words=True)
        await stream.open()
    except VoxserveError as exc:
        await websocket.close(code=4000 + exc.status_code, reason=exc.message[:120])
        return
    try:
        await _converse(websocket, stream, listener)
    except WebSocketDisconnect:
        pass
    finally:
        await stream.close()
    if WebSocketState.DISCONNECTED not in (websocket.client_state, websocket.application_state):
        await websocket.close(code=1000)


async def _converse(websocket: WebSocket, stream: TextStream, listener: SocketListener) -> None:
    """Messages until the client ends the stream (then: its last audio, ``done``) or leaves."""
    idle = stream.settings.idle_seconds
    ended = asyncio.ensure_future(stream.ended.wait())
    receiving = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            await asyncio.wait({receiving, ended}, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                if stream.broken is not None:  # the connection broke while audio was sent
                    return
                usage = {"characters": stream.chars, "audio_seconds": round(stream.audio_seconds, 3)}
                await listener.send({"type": "done", "usage": usage})
                return
            if stream.expired:
                await websocket.close(code=1008, reason="the stream reached text_streams.max_seconds")
                return
            if not receiving.done():
                if stream.flush_if_waiting() or not stream.idle:
                    continue
                await websocket.close(code=1000, reason="idle")
                return
            message = receiving.result()
            if message["type"] == "websocket.disconnect":
                return
            receiving = asyncio.ensure_future(websocket.receive())
            try:
                await _handle(_parsed(message.get("text", message.get("bytes"))), stream, listener)
            except VoxserveError as exc:
                await listener.failed(exc)
    finally:
        ended.cancel()
        receiving.cancel()


async def _handle(message: Message, stream: TextStream, listener: SocketListener) -> None:
    if isinstance(message, Text):
        await stream.write(message.text)
    elif isinstance(message, Flush):
        stream.flush()
    elif isinstance(message, Cancel):
        await stream.cancel()
        await listener.send({"type": "cancelled"})
    elif isinstance(message, End):
        stream.flush(last=True)
    else:
        stream.configure(SpeechOptions(**message.model_dump(exclude={"type"})))
