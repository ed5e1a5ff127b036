"""The Wyoming server: how Home Assistant and Rhasspy reach a TTS service, beside the HTTP API on the
same engines, pools, admission and limits (``wyoming.uri``, ``voxserve serve --wyoming``).

It follows wyoming-piper's handler (rhasspy/wyoming-piper ``wyoming_piper/handler.py``, the
server Home Assistant users run): ``describe`` → ``info`` (every voice with its languages);
``synthesize`` → one ``audio-start``, its ``audio-chunk``\\ s, one ``audio-stop``; streaming input
(``synthesize-start``, ``synthesize-chunk``\\ s, ``synthesize-stop``) → each sentence's own
``audio-start``/``audio-chunk``/``audio-stop`` as soon as the sentence is complete in the text,
then ``synthesize-stopped``. The ``synthesize`` a client sends inside a stream, for servers that do
not stream, is ignored, as there. Audio is 16-bit mono PCM at the first sentence's rate.

Wyoming has no authentication: a connection from an address that is neither loopback nor in
``wyoming.allowed_clients`` is closed unread, and the settings refuse a bind beyond loopback
without that list. Its clients are anonymous: ``limits.anonymous`` applies per address. Events are
read with bounds (the library's reader takes any length a client announces).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from voxserve import __version__
from voxserve.api.text_streams import TextStream
from voxserve.config import WyomingSettings
from voxserve.errors import InvalidRequest, PayloadTooLarge, VoxserveError
from voxserve.pipeline import Plan
from voxserve.rendering import SegmentTime
from voxserve.request import SpeechOptions
from voxserve.security.clientip import networks
from voxserve.security.guard import Principal
from voxserve.services import Services

log = logging.getLogger(__name__)

SAMPLES_PER_CHUNK = 1024  # wyoming-piper's default
MAX_LINE_BYTES = 64 * 1024  # an event's header line
MAX_DATA_BYTES = 256 * 1024  # its JSON data (a synthesize's text) and its payload, each
ATTRIBUTION = Attribution(name="voxserve", url="https://github.com/voxserve/voxserve")


class BadEvent(Exception):
    """An event past the bounds, or not an event: the connection ends (the client is told why)."""


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None when the client is gone; BadEvent when it broke the protocol."""
    try:
        line = await reader.readline()
        if not line:
            return None
        header = _json_object(line, "the header line")
        data_length = _length(header, "data_length")
        payload_length = _length(header, "payload_length")
        data = header.get("data") or {}
        if not isinstance(data, dict) or not isinstance(header.get("type"), str):
            raise BadEvent("an event's header has a type (text) and its data is an object")
        if data_length:
            data = {**data, **_json_object(await reader.readexactly(data_length), "the event's data")}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except ValueError:  # a line past the reader's limit
        raise BadEvent(f"an event's header line is at most {MAX_LINE_BYTES} bytes") from None
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return Event(type=header["type"], data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadEvent(f"{what} is not JSON (or nests too deeply)") from None
    if not isinstance(found, dict):
        raise BadEvent(f"{what} is a JSON object")
    return found


def _length(header: dict[str, Any], name: str) -> int:
    value = header.get(name) or 0
    if not isinstance(value, int) or not 0 <= value <= MAX_DATA_BYTES:
        raise BadEvent(f"{name} is a whole number of bytes up to {MAX_DATA_BYTES}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("text is a string", param="text")
    return value


def info(services: Services) -> Info:
    """Every built-in voice, with its languages and engine (library voices are a key's: not here)."""
    voices = [
        TtsVoice(
            name=voice.id,
            description=f"{voice.id} ({engine.name})",
            attribution=ATTRIBUTION,
            installed=True,
            version=None,
            languages=list(voice.languages),
        )
        for engine in services.pipeline.engines.values()
        for voice in engine.capabilities.voices
    ]
    program = TtsProgram(
        name="voxserve",
        description="voxserve: self-hosted speech synthesis",
        attribution=ATTRIBUTION,
        installed=True,
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


class WyomingListener:
    """A text stream's audio as Wyoming events: per sentence, or (``whole``) one audio for all."""

    def __init__(self, handler: WyomingHandler, whole: bool) -> None:
        self.handler = handler
        self.whole = whole
        self.started = False

    async def begin(self, index: int, text: str, plan: Plan) -> None:
        if not (self.whole and self.started):
            await self.handler.write_event(AudioStart(rate=plan.output_rate, width=2, channels=1).event())
        self.started = True
        self.rate = plan.output_rate

    async def audio(self, chunk: bytes) -> None:
        step = SAMPLES_PER_CHUNK * 2
        for at in range(0, len(chunk), step):
            part = AudioChunk(rate=self.rate, width=2, channels=1, audio=chunk[at : at + step])
            await self.handler.write_event(part.event())

    async def end(self, index: int, segments: list[SegmentTime]) -> None:
        if not self.whole:
            await self.handler.write_event(AudioStop().event())

    async def failed(self, error: VoxserveError) -> None:
        await self.handler.write_event(Error(text=error.message, code=error.code).event())

    async def flushed(self, last: bool) -> None:
        if last:  # a text with nothing to say gets audio-stop alone, as from wyoming-piper
            await self.handler.write_event((AudioStop() if self.whole else SynthesizeStopped()).event())


class WyomingHandler(AsyncEventHandler):
    """One client connection: its events, and the text stream it may have open."""

    def __init__(
        self, services: Services, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.services = services
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "unknown"
        self.principal = Principal(None, client, auth=services.guard.auth)
        self.stream: TextStream | None = None
        self.limits = services.settings.text_streams
        self.deadline = time.monotonic() + self.limits.max_seconds

    async def run(self) -> None:
        """Events until the client leaves, breaks the protocol, stops reading or stays idle for
        ``text_streams.idle_seconds``; no connection outlives ``text_streams.max_seconds``."""
        try:
            while time.monotonic() < self.deadline:
                try:
                    event = await asyncio.wait_for(read_event(self.reader), self.limits.idle_seconds)
                except TimeoutError:
                    stream = self.stream
                    if stream is not None and (stream.flush_if_waiting() or not stream.idle):
                        continue
                    break
                if event is None:
                    break
                await self.handle_event(event)
        except BadEvent as exc:
            log.warning("wyoming: %s broke the protocol: %s", self.principal.client, exc)
            with contextlib.suppress(ConnectionError):
                await self.write_event(Error(text=str(exc), code="invalid_request").event())
        except ConnectionError as exc:
            log.info("wyoming: %s: connection ended: %s", self.principal.client, exc)
        finally:
            await self._close_stream()
            self.writer.close()

    async def write_event(self, event: Event) -> None:
        """Write, or ConnectionError when the client does not read for ``text_streams.idle_seconds``."""
        try:
            await asyncio.wait_for(super().write_event(event), self.limits.idle_seconds)
        except TimeoutError:
            raise ConnectionError("the client stopped reading") from None

    async def handle_event(self, event: Event) -> bool:
        """One event; a refusal or a malformed event is an ``error`` event, the connection stays."""
        try:
            return await self._handle(event)
        except VoxserveError as exc:
            await self.write_event(Error(text=exc.message, code=exc.code).event())
        except (KeyError, TypeError, ValueError) as exc:  # from_event on data that is not the event's
            message = f"a {event.type} event with data the protocol does not have: {exc}"
            await self.write_event(Error(text=message, code="invalid_request").event())
        return True

    async def _handle(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(info(self.services).event())
        elif Synthesize.is_type(event.type):
            if self.stream is None:  # inside a stream it is a copy for servers that do not stream
                await self._synthesize(Synthesize.from_event(event))
        elif SynthesizeStart.is_type(event.type):
            await self._close_stream()
            start = SynthesizeStart.from_event(event)
            self.stream = await self._open(start.voice, whole=False)
        elif SynthesizeChunk.is_type(event.type) and self.stream is not None:
            await self.stream.write(_text(SynthesizeChunk.from_event(event).text))
        elif SynthesizeStop.is_type(event.type) and self.stream is not None:
            self.stream.flush(last=True)
            await self._until_ended(self.stream)
            await self._close_stream()
        return True

    async def _until_ended(self, stream: TextStream) -> None:
        """Until the stream has said its last sentence; ConnectionError if the connection broke
        meanwhile, or outlived ``text_streams.max_seconds``."""
        try:
            await asyncio.wait_for(stream.ended.wait(), max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:
            raise ConnectionError("the connection reached text_streams.max_seconds") from None
        if stream.broken is not None:
            raise ConnectionError(str(stream.broken))

    async def _synthesize(self, synthesize: Synthesize) -> None:
        """A whole text: one audio-start, the audio of every sentence, one audio-stop."""
        text = _text(synthesize.text)
        limit = self.services.settings.max_input_chars
        if len(text) > limit:
            raise PayloadTooLarge(
                f"text is {len(text)} characters; the limit for a synchronous request is {limit}",
                param="text",
            )
        stream = await self._open(synthesize.voice, whole=True)
        try:
            await stream.write(text)
            stream.flush(last=True)
            await self._until_ended(stream)
        finally:
            await stream.close()

    async def _open(self, voice: SynthesizeVoice | None, whole: bool) -> TextStream:
        """A text stream with the voice asked for: by name, or the best voice of a language."""
        name = voice.name if voice else None
        language = voice.language if voice and not name else None
        options = SpeechOptions(response_format="pcm", voice=name, language=language)
        stream = TextStream(self.services, self.principal, options, WyomingListener(self, whole))
        await stream.open()
        return stream

    async def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.close()


def allowed_client(address: str, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or any(ip in network for network in allowed)


class WyomingServer:
    """The listening socket and the connections it serves (closed with the service)."""

    def __init__(self, services: Services, settings: WyomingSettings) -> None:
        self.services = services
        self.settings = settings
        self.allowed = networks(settings.allowed_clients)
        self.connections: set[asyncio.Task[Any]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on ``wyoming.uri`` now (a port in use fails the start)."""
        self.server = await asyncio.start_server(
            self._connected, self.settings.host, self.settings.port, limit=MAX_LINE_BYTES
        )
        log.info("wyoming: listening on %s", self.settings.uri)

    async def serve(self) -> None:
        """Until closed (supervised: an end with an error shows in ``/readyz``)."""
        assert self.server is not None
        await self.server.serve_forever()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.connections:
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not peer or not allowed_client(str(peer[0]), self.allowed):
            log.warning("wyoming: refused a connection from %s (not in wyoming.allowed_clients)", peer)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await WyomingHandler(self.services, reader, writer).run()
        finally:
            self.connections.discard(task)
