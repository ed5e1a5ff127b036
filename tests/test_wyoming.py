"""The Wyoming server, driven by the ``wyoming`` library's own client, over the fake engine."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from tests.support.api import ready_client
from voxserve.api.wyoming import allowed_client
from voxserve.config import Settings, WyomingSettings
from voxserve.engines.fake import FakeEngine
from voxserve.security.clientip import networks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def wyoming_port(tmp_path: Path, fake_engine: FakeEngine) -> Iterator[int]:
    port = free_port()
    settings = Settings(data_dir=tmp_path, default_engine="fake", wyoming={"uri": f"tcp://127.0.0.1:{port}"})
    with ready_client(settings, {"fake": fake_engine}):
        yield port


async def events_until(client: AsyncTcpClient, *kinds: str) -> list[Event]:
    found: list[Event] = []
    while not found or found[-1].type not in kinds:
        event = await asyncio.wait_for(client.read_event(), 10)
        assert event is not None, "the server closed the connection"
        found.append(event)
    return found


def seconds(events: list[Event]) -> float:
    return sum(AudioChunk.from_event(e).seconds for e in events if AudioChunk.is_type(e.type))


def test_describe_lists_every_voice_with_its_languages(wyoming_port: int) -> None:
    async def run() -> Info:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(Describe().event())
            [event] = await events_until(client, "info")
            return Info.from_event(event)

    [program] = asyncio.run(run()).tts
    assert program.supports_synthesize_streaming and program.name == "voxserve"
    [voice] = program.voices
    assert voice.name == "tone" and sorted(voice.languages) == ["en", "ja", "zh"]


def test_synthesize_is_one_audio(wyoming_port: int) -> None:
    async def run() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(Synthesize(text="One two. Three four five.").event())
            return await events_until(client, "audio-stop")

    events = asyncio.run(run())
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (16000, 2, 1)
    assert [e.type for e in events].count("audio-start") == 1
    assert seconds(events) == pytest.approx(5 * 0.2 + 2 * 0.25, abs=0.01)


def test_streamed_text_is_spoken_sentence_by_sentence(wyoming_port: int, fake_engine: FakeEngine) -> None:
    async def run() -> tuple[list[Event], list[Event]]:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tone")).event())
            for chunk in ["One", " two", ". Three", " four"]:
                await client.write_event(SynthesizeChunk(text=chunk).event())
            first = await events_until(client, "audio-stop")  # before the stream is stopped
            await client.write_event(Synthesize(text="One two. Three four.").event())  # ignored
            await client.write_event(SynthesizeStop().event())
            return first, await events_until(client, "synthesize-stopped")

    first, rest = asyncio.run(run())
    assert [first[0].type, first[-1].type] == ["audio-start", "audio-stop"]
    assert seconds(first) == pytest.approx(2 * 0.2 + 0.25, abs=0.01)
    assert [e.type for e in rest if not AudioChunk.is_type(e.type)] == [
        "audio-start",
        "audio-stop",
        "synthesize-stopped",
    ]
    assert [call.text for call in fake_engine.calls] == ["One two.", "Three four"], "the copy is not spoken"


def test_unknown_voice_is_an_error_event(wyoming_port: int) -> None:
    async def run() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event())
            return await events_until(client, "error")

    [error] = asyncio.run(run())
    assert Error.from_event(error).code == "unknown_voice"


def test_an_event_announcing_too_much_data_ends_the_connection(wyoming_port: int) -> None:
    async def run() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", wyoming_port)
        writer.write(b'{"type": "synthesize", "data_length": 1000000000}\n')
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return answer

    header, data = asyncio.run(run()).split(b"\n", 1)
    assert json.loads(header)["type"] == "error", "told why, then closed, without reading a gigabyte"
    assert b"data_length is a whole number of bytes up to 262144" in data


@pytest.mark.parametrize(
    "data",
    [{"text": 5}, {}, {"text": "Hi.", "voice": {"name": 5}}],
)
def test_a_malformed_event_is_an_error_and_the_connection_goes_on(
    wyoming_port: int, data: dict[str, object]
) -> None:
    async def run() -> tuple[list[Event], list[Event]]:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(Event(type="synthesize", data=data))
            refused = await events_until(client, "error")
            await client.write_event(Describe().event())
            return refused, await events_until(client, "info")

    refused, described = asyncio.run(run())
    assert Error.from_event(refused[-1]).code in {"invalid_request", "unknown_voice"}
    assert described[-1].type == "info"


def test_nothing_to_say_is_audio_stop_alone(wyoming_port: int) -> None:
    async def run() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
            await client.write_event(Synthesize(text="...").event())
            return await events_until(client, "audio-stop")

    assert [e.type for e in asyncio.run(run())] == ["audio-stop"], "as wyoming-piper answers it"


def test_a_client_that_leaves_mid_speech_gives_its_stream_back(tmp_path: Path) -> None:
    engine = FakeEngine(name="fake", slow_on="slowly", slow_seconds=0.5)
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        default_engine="fake",
        wyoming={"uri": f"tcp://127.0.0.1:{port}"},
        limits={"anonymous": {"concurrent_streams": 1}},
    )

    async def leave() -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:  # leaves after the first audio
            await client.write_event(Synthesize(text="One two three. It goes slowly now. And on.").event())
            await events_until(client, "audio-start")

    async def speak() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(text="Hello there.").event())
            return await events_until(client, "audio-stop", "error")

    with ready_client(settings, {"fake": engine}):
        asyncio.run(leave())
        deadline = time.monotonic() + 5
        while (answer := asyncio.run(speak()))[-1].type == "error":
            assert time.monotonic() < deadline, Error.from_event(answer[-1]).text
            time.sleep(0.1)
    assert answer[0].type == "audio-start"


def test_only_loopback_and_allowed_clients(tmp_path: Path) -> None:
    allowed = networks(["192.168.1.0/24"])
    assert (
        allowed_client("127.0.0.1", allowed)
        and allowed_client("::1", allowed)
        and allowed_client("192.168.1.20", allowed)
    )
    assert not allowed_client("10.0.0.5", allowed) and not allowed_client("not an address", allowed)
    with pytest.raises(ValidationError, match=r"wyoming\.allowed_clients"):
        WyomingSettings(uri="tcp://0.0.0.0:10200")
    assert WyomingSettings(uri="tcp://0.0.0.0:10200", allowed_clients=["192.168.1.0/24"]).port == 10200
    with pytest.raises(ValidationError, match="not an address or network"):
        WyomingSettings(uri="tcp://127.0.0.1:10200", allowed_clients=["kitchen"])
