"""``WS /v1/audio/speech/stream``: text deltas in, each sentence's audio out, over the fake engine."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from tests.support.api import ClientFactory
from voxserve.engines.fake import FakeEngine

URL = "ws://127.0.0.1/v1/audio/speech/stream"


def receive_until(socket: WebSocketTestSession, kind: str) -> tuple[list[dict[str, Any]], bytes]:
    """Events and audio up to and including the first event of ``kind``."""
    events: list[dict[str, Any]] = []
    audio = b""
    while True:
        message = socket.receive()
        if message.get("bytes") is not None:
            audio += message["bytes"]
            continue
        event = json.loads(message["text"])
        events.append(event)
        if event["type"] == kind:
            return events, audio


def sent(client: TestClient, deltas: list[str], ending: str = "end") -> list[dict[str, Any]]:
    """The events of a stream that is sent ``deltas`` and then ``ending`` (``end``, ``flush``), up to
    the event that answers it."""
    with client.websocket_connect(URL) as socket:
        for delta in deltas:
            socket.send_json({"type": "text", "text": delta})
        socket.send_json({"type": ending})
        events, _ = receive_until(socket, "done" if ending == "end" else "flushed")
    return events


def spoken(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "sentence.start"]


def test_sentences_are_spoken_as_soon_as_they_are_complete(make_client: ClientFactory) -> None:
    client = make_client()
    with client.websocket_connect(URL) as socket:
        for delta in ["Hello ", "there", ". How", " are you", "? I am"]:
            socket.send_json({"type": "text", "text": delta})
        events, audio = receive_until(socket, "sentence.end")
        assert events[0] == {
            "type": "sentence.start",
            "index": 0,
            "text": "Hello there.",
            "format": "pcm",
            "sample_rate": 16000,
            "engine": "fake",
            "voice": "tone",
        }
        assert len(audio) / 2 / 16000 == pytest.approx(2 * 0.2 + 0.25, abs=0.01), "two words, then a pause"
        events, audio = receive_until(socket, "sentence.end")
        assert events[0]["text"] == "How are you?", "a question mark ends a sentence at once"
        [segment] = events[-1]["segments"]
        assert segment["start"] == pytest.approx(0.65, abs=0.01), "times run from the stream's start"
        socket.send_json({"type": "text", "text": " fine"})
        socket.send_json({"type": "end"})
        events, audio = receive_until(socket, "done")
        assert [e["type"] for e in events] == ["sentence.start", "sentence.end", "flushed", "done"]
        assert events[0]["text"] == "I am fine", "end speaks the unfinished sentence"
        assert events[-1]["usage"]["characters"] == len("Hello there.How are you?I am fine")
        samples = np.frombuffer(audio, dtype="<i2")
        assert np.abs(samples).max() > 1000, "speech, not silence"
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 1000


def test_a_period_waits_for_the_next_delta_and_flush_speaks_what_is_pending(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    events = sent(make_client(), ["Ask Dr.", " Smith now.", " Then wait"], "flush")
    assert spoken(events) == ["Ask Dr. Smith now.", "Then wait"]
    assert [call.text for call in fake_engine.calls] == ["Ask doctor Smith now.", "Then wait"]


def test_cancel_stops_the_sentence_being_made_and_drops_the_rest(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.slow_on, fake_engine.slow_seconds = "slowly", 5.0
    client = make_client()
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": "This goes slowly. This is never said. Nor this"})
        receive_until(socket, "sentence.start")
        started = time.monotonic()
        socket.send_json({"type": "cancel"})
        events, audio = receive_until(socket, "cancelled")
        assert time.monotonic() - started < 2, "cancel does not wait for the slow segment"
        assert audio == b"" and [e["type"] for e in events] == ["cancelled"]
        socket.send_json({"type": "text", "text": "After the barge-in!"})
        events, audio = receive_until(socket, "sentence.end")
        assert events[0]["text"] == "After the barge-in!" and audio
    said = [call.text for call in fake_engine.calls]
    assert "This is never said." not in said and "Nor this" not in said


def test_options_choose_voice_format_and_rate(make_client: ClientFactory) -> None:
    client = make_client()
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "options", "response_format": "pcm", "sample_rate": 24000, "speed": 2.0})
        socket.send_json({"type": "text", "text": "One two three four."})
        socket.send_json({"type": "end"})
        events, audio = receive_until(socket, "done")
    assert events[0]["sample_rate"] == 24000
    assert len(audio) / 2 / 24000 == pytest.approx((4 * 0.2 + 0.25) / 2, abs=0.02)


@pytest.mark.parametrize(
    ("message", "param", "text"),
    [
        ("{not json", "message", "not JSON"),
        ('{"type": "shout"}', "type", "does not match any of the expected tags"),
        ('{"type": "text", "text": 5}', "text", "valid string"),
        ('{"type": "options", "voice": "alloy"}', "type", "options come first"),
        ('{"type": "options", "speed": 9}', "speed", "less than or equal to 4"),
        ('{"type": "options", "response_format": "mid"}', "response_format", "'mp3', 'opus'"),
        ('{"type": "text", "text": "x", "extra": 1}', "extra", "Extra inputs are not permitted"),
    ],
)
def test_bad_messages_are_errors_and_the_stream_goes_on(
    make_client: ClientFactory, message: str, param: str, text: str
) -> None:
    client = make_client()
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": "First"})
        socket.send_text(message)
        error = socket.receive_json()
        assert error["type"] == "error" and error["error"]["param"] == param, error
        assert error["error"]["status"] == 400 and text in error["error"]["message"]
        socket.send_json({"type": "end"})
        events, audio = receive_until(socket, "done")
        assert events[0]["text"] == "First" and audio


def test_unknown_voice_is_an_error_event(make_client: ClientFactory) -> None:
    client = make_client()
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "options", "voice": "nobody"})
        socket.send_json({"type": "text", "text": "Hello!"})
        error = socket.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "unknown_voice", error
        assert error["error"]["status"] == 404


def test_text_waiting_beyond_the_limit_is_refused(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.slow_on, fake_engine.slow_seconds = "slowly", 5.0
    client = make_client(text_streams={"max_queued_chars": 100})
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": "This goes slowly. " + "More words here. " * 4})
        receive_until(socket, "sentence.start")
        socket.send_json({"type": "text", "text": "x" * 60})
        error = socket.receive_json()
        assert error["error"]["status"] == 413
        assert "text_streams.max_queued_chars" in error["error"]["message"]
        socket.send_json({"type": "cancel"})
        receive_until(socket, "cancelled")


def test_an_idle_stream_speaks_what_waits_then_closes(make_client: ClientFactory) -> None:
    client = make_client(text_streams={"idle_seconds": 0.3})
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": "An unfinished sentence"})
        events, _ = receive_until(socket, "flushed")
        assert events[0]["text"] == "An unfinished sentence", "the client went quiet: it is spoken"
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    assert closed.value.code == 1000 and closed.value.reason == "idle"


def test_keys_scopes_and_streams_as_on_http(make_client: ClientFactory) -> None:
    client: TestClient = make_client(auth={"enabled": True})
    with client.websocket_connect(URL) as socket, pytest.raises(WebSocketDisconnect) as closed:
        socket.receive_json()
    assert closed.value.code == 4401


def test_only_a_sentence_nothing_plays_before_may_start_short(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.pace = 0.1  # seconds a character: every sentence here would be slow to start
    client = make_client()
    sentence = "Eleven twelve thirteen fourteen, fifteen sixteen seventeen."
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": f"{sentence} {sentence} "})
        socket.send_json({"type": "end"})
        events, _ = receive_until(socket, "done")
    [first, second] = [e["segments"] for e in events if e["type"] == "sentence.end"]
    assert len(first) == 2 and len(second) == 1, "the first starts with a short piece, the next need not"


def test_options_right_after_the_first_text_are_refused(make_client: ClientFactory) -> None:
    client = make_client()
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": "Hi there!"})
        socket.send_json({"type": "options", "sample_rate": 8000})
        events, _ = receive_until(socket, "error")
        assert "options come first" in events[-1]["error"]["message"]
        socket.send_json({"type": "text", "text": " Second one!"})
        socket.send_json({"type": "end"})
        events, _ = receive_until(socket, "done")
    assert {e["sample_rate"] for e in events if e["type"] == "sentence.start"} == {16000}


def test_an_ssml_document_is_spoken_whole_once_it_is_closed(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    deltas = ["Before it. <speak>One. Two", '.<break time="200ms"/> Three!', "</speak> After"]
    events = sent(make_client(), deltas)
    assert "error" not in [e["type"] for e in events], events
    assert spoken(events) == ["Before it.", '<speak>One. Two.<break time="200ms"/> Three!</speak>', "After"]


def test_after_end_no_more_text_and_a_cancel_still_ends(make_client: ClientFactory) -> None:
    client = make_client()
    with client.websocket_connect(URL) as socket:
        socket.send_json({"type": "text", "text": "One two three four five six seven."})
        socket.send_json({"type": "end"})
        socket.send_json({"type": "text", "text": "More?"})
        socket.send_json({"type": "cancel"})
        events, _ = receive_until(socket, "done")
    errors = [e["error"] for e in events if e["type"] == "error"]
    assert errors and "the stream was ended" in errors[0]["message"]


@pytest.mark.parametrize(
    ("message", "param", "text"),
    [
        ('{"type": "text", "text": "' + "word " * 1000 + '"}', "text", "the limit is 500 (max_input_chars)"),
        ("[" * 30000 + "]" * 30000, "message", "nests too deeply"),
    ],
)
def test_oversize_and_deep_messages_are_refused(
    make_client: ClientFactory, message: str, param: str, text: str
) -> None:
    client = make_client(max_input_chars=500)
    with client.websocket_connect(URL) as socket:
        socket.send_text(message)
        error = socket.receive_json()["error"]
    assert error["param"] == param and text in error["message"], error


def test_a_long_sentence_in_one_message_is_spoken_in_pieces(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    events = sent(make_client(max_input_chars=4000), ["word " * 700 + "end!"])
    assert "error" not in [e["type"] for e in events], events
    pieces = spoken(events)
    assert len(pieces) >= 4 and max(len(p) for p in pieces) <= 1000
