"""The voice library: reference checks with real bad files, storage, use by id, inline references."""

from __future__ import annotations

import io
import os
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from harness.servers.engines import serving

from tests.support.api import assert_error, ready_client
from tests.support.audio import assert_speech_like, decode
from tests.support.signals import GOOD, voice_like
from voxserve.audio import FORMATS, StreamEncoder
from voxserve.audio.pcm import wav_bytes
from voxserve.config import ReferenceSettings, Settings
from voxserve.engines.fake import FakeEngine
from voxserve.voices import REFERENCE_RATE, check_reference
from voxserve.voices.reference import sniff_format


def bad_files() -> list[tuple[str, bytes, int, str, str]]:
    """(label, file, status, code, words the message must contain)."""
    clipped = np.clip(voice_like(5.0, 22050) * 8, -1, 1)
    return [
        ("truncated", GOOD[: len(GOOD) // 2], 422, "invalid_audio", "truncated: its header declares 5.00 s"),
        ("8 kHz", wav_bytes(voice_like(5.0, 8000), 8000), 422, "invalid_audio", "8000 Hz; at least 16000 Hz"),
        ("1 s", wav_bytes(voice_like(1.0, 24000), 24000), 422, "invalid_audio", "1.0 s long; a reference"),
        ("20 s", wav_bytes(voice_like(20.0, 24000), 24000), 422, "invalid_audio", "longer than 15 s"),
        ("silence", wav_bytes(np.zeros(24000 * 5, np.float32), 24000), 422, "invalid_audio", "silent"),
        ("clipped", wav_bytes(clipped, 22050), 422, "invalid_audio", "badly clipped"),
        ("text named .wav", b"not audio\n" * 50, 415, "unsupported_media_type", "judged by its content"),
        ("11 MB", b"RIFF" + b"\0" * (11 * 1024 * 1024), 413, "input_too_large", "limit is 10485760 bytes"),
        ("NaN", double_wav(np.full(24000 * 5, np.nan)), 422, "invalid_audio", "(NaN or infinity)"),
        ("inf", double_wav(np.append(voice_like(5.0, 24000), np.inf)), 422, "invalid_audio", "not numbers"),
        ("0 bits", GOOD[:34] + b"\0\0" + GOOD[36:], 422, "invalid_audio", "wav file"),
    ]


def double_wav(samples: np.ndarray) -> bytes:
    """A float64 WAV (format 3, IEEE float): it can hold values no microphone makes."""
    data = samples.astype("<f8").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 24000, 24000 * 8, 8, 64)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.fixture
def cloning_engine() -> FakeEngine:
    return FakeEngine(name="fake", cloning=True)


@pytest.fixture
def refs(tmp_path: Path) -> Path:
    directory = tmp_path / "refs"
    directory.mkdir()
    (directory / "me.wav").write_bytes(GOOD)
    return directory


@pytest.fixture
def voices_client(tmp_path: Path, refs: Path, cloning_engine: FakeEngine) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        default_engine="fake",
        references={"dirs": [refs], "url_hosts": ["localhost", "127.0.0.1"]},
    )
    engines = {"fake": cloning_engine, "plain": FakeEngine(name="plain")}
    with ready_client(settings, engines, raise_server_exceptions=False) as client:
        yield client


def upload(client: TestClient, data: bytes, **form: str) -> httpx.Response:
    return client.post(  # type: ignore[return-value]  # starlette's client returns its own httpx's Response
        "/v1/voices", data=form, files={"audio": ("ref.wav", data, "audio/wav")}
    )


@pytest.mark.parametrize(
    ("label", "data", "status", "code", "words"), bad_files(), ids=[f[0] for f in bad_files()]
)
def test_every_rule_refuses_a_real_bad_file(
    voices_client: TestClient, tmp_path: Path, label: str, data: bytes, status: int, code: str, words: str
) -> None:
    response = voices_client.post("/v1/voices", files={"audio": ("voice.wav", data, "audio/wav")})
    assert_error(response, status, code, "audio", words)
    assert not list((tmp_path / "data" / "voices").glob("v_*")), f"{label}: nothing is stored"


def test_formats_are_sniffed_from_content_not_names() -> None:
    mp3 = StreamEncoder(FORMATS["mp3"], 24000, 44100)
    assert sniff_format(GOOD) == "wav"
    assert sniff_format(mp3.write(voice_like(1.0, 24000)) + mp3.finish()) == "mp3"
    assert sniff_format(b"fLaC....") == "flac" and sniff_format(b"OggS....") == "ogg"
    assert sniff_format(b"\0\0\0\x20ftypM4A ") == "m4a" and sniff_format(b"<html>") is None


def test_a_reference_is_normalized_once(tmp_path: Path) -> None:
    stereo_mp3 = StreamEncoder(FORMATS["mp3"], 44100, 44100)
    quiet = stereo_mp3.write((voice_like(6.0, 44100) * 0.1).astype(np.float32)) + stereo_mp3.finish()
    checked = check_reference(quiet, ReferenceSettings())
    audio = decode(checked.wav_bytes())
    assert checked.source_format == "mp3" and checked.source_rate == 44100
    assert audio.sample_rate == REFERENCE_RATE and audio.duration == pytest.approx(6.0, abs=0.1)
    rms = float(np.sqrt(np.mean(np.square(checked.samples))))
    assert rms == pytest.approx(0.1, rel=0.15), "levelled to the pipeline's speech level"


def test_library_lifecycle(voices_client: TestClient) -> None:
    created = upload(voices_client, GOOD, name="narrator", prompt_text="今天天气很好。", language="zh")
    assert created.status_code == 201, created.text
    voice = created.json()
    assert (
        voice["id"].startswith("v_") and voice["kind"] == "cloned" and voice["seconds"] == pytest.approx(5.0)
    )
    again = upload(voices_client, GOOD, name="narrator")
    assert again.status_code == 200 and again.json()["id"] == voice["id"], "same audio: the same voice"
    other = wav_bytes(voice_like(4.0, 24000) * 0.5 + 0.01, 24000)
    assert_error(upload(voices_client, other, name="narrator"), 409, "conflict", "name", "already exists")
    listed = voices_client.get("/v1/voices").json()["voices"]
    assert listed[0]["id"] == voice["id"] and {"tone", "narrator"} <= {v.get("name") for v in listed}
    assert voice["id"] in {v["id"] for v in voices_client.get("/v1/audio/voices").json()["voices"]}
    assert voices_client.get("/v1/voices/narrator").json()["id"] == voice["id"]
    with wave.open(io.BytesIO(voices_client.get(f"/v1/voices/{voice['id']}/audio").content)) as reference:
        assert (reference.getframerate(), reference.getnchannels(), reference.getsampwidth()) == (24000, 1, 2)
    preview = voices_client.get(f"/v1/voices/{voice['id']}/preview", params={"response_format": "wav"})
    assert preview.status_code == 200 and decode(preview.content).duration > 0.3
    assert voices_client.delete("/v1/voices/narrator").json() == {"id": voice["id"], "deleted": True}
    assert_error(voices_client.get(f"/v1/voices/{voice['id']}"), 404, "unknown_voice", "voice_id")
    assert_error(voices_client.delete("/v1/voices/narrator"), 404, "unknown_voice", "voice_id")


@pytest.mark.parametrize(
    ("form", "status", "param", "words"),
    [
        ({"name": "../../etc/passwd"}, 400, "name", "is not allowed"),
        ({"name": "v_0123456789abcdef"}, 400, "name", "voice id"),
        ({"name": "x", "blend": "tone(1)+tone(2)"}, 400, "audio", "either an audio file or a blend"),
        ({"name": "tone"}, 409, "name", "an engine's own voice"),
        ({"name": "alloy"}, 409, "name", "an engine's own voice"),
    ],
)
def test_bad_voice_forms(
    voices_client: TestClient, form: dict[str, str], status: int, param: str, words: str
) -> None:
    code = "conflict" if status == 409 else "invalid_request"
    assert_error(upload(voices_client, GOOD, **form), status, code, param, words)


def test_a_stored_voice_is_used_by_id_or_name_everywhere(
    voices_client: TestClient, cloning_engine: FakeEngine
) -> None:
    voice = upload(voices_client, GOOD, name="narrator", prompt_text="hello there").json()
    body = {"input": "one two", "voice": "narrator", "response_format": "wav"}
    cloned = voices_client.post("/v1/audio/speech", json=body)
    plain = voices_client.post("/v1/audio/speech", json={**body, "voice": "tone"})
    assert cloned.status_code == 200 and cloned.content != plain.content, "the cloned voice sounds its own"
    reference = cloning_engine.calls[0].reference
    assert (
        reference is not None and reference.digest == voice["audio"] and reference.transcript == "hello there"
    )
    by_id = voices_client.post("/v1/audio/speech", json={**body, "voice": voice["id"]})
    assert by_id.content == cloned.content
    tts = voices_client.post("/tts", data={"text": "one two", "voice": "narrator"})
    assert tts.status_code == 200 and decode(tts.content).duration > 0.3
    as_reference = voices_client.post("/tts", data={"text": "one two", "reference_audio": voice["id"]})
    assert as_reference.content == tts.content, "seed 000's reference_audio field takes a stored voice too"
    unknown = voices_client.post("/tts", data={"text": "one two", "reference_audio": "nobody"})
    assert_error(unknown, 404, "unknown_voice", "reference_audio", "not in the voice library")
    job = voices_client.post("/v1/jobs", json={"input": "one two", "voice": "narrator"})
    assert job.status_code == 202, job.text
    refused = voices_client.post("/v1/audio/speech", json={**body, "model": "plain"})
    assert_error(refused, 422, "capability_missing", "voice", "cannot clone")


def test_inline_references_upload_path_and_url(voices_client: TestClient, refs: Path, tmp_path: Path) -> None:
    files = {"reference_audio": ("x.wav", GOOD, "audio/wav")}
    uploaded = voices_client.post("/tts", data={"text": "one two"}, files=files)
    assert uploaded.status_code == 200, uploaded.text
    by_path = voices_client.post("/tts", data={"text": "one two", "audio_path": str(refs / "me.wav")})
    relative = voices_client.post("/tts", data={"text": "one two", "audio_path": "me.wav"})
    assert by_path.content == uploaded.content == relative.content, "the same reference is the same voice"
    assert len(voices_client.get("/v1/voices").json()["voices"]) == 1 + 2  # one stored, two built-in


def test_inline_references_carry_their_transcript(voices_client: TestClient, refs: Path) -> None:
    """``prompt_text`` on /tts and ``promptText`` on the task API: the same audio said to say something
    else is another voice; a named voice keeps its own transcript."""
    files = {"reference_audio": ("x.wav", GOOD, "audio/wav")}
    for said in ["今天天气很好。", "明天见。"]:
        response = voices_client.post("/tts", data={"text": "one two", "prompt_text": said}, files=files)
        assert response.status_code == 200, response.text
    task = voices_client.post(
        "/api/synthesis", json={"text": "one", "audio": "me.wav", "promptText": "再见。"}
    )
    assert task.status_code == 200, task.text
    stored = [v for v in voices_client.get("/v1/voices").json()["voices"] if v["kind"] == "cloned"]
    assert sorted(v["prompt_text"] for v in stored) == ["今天天气很好。", "再见。", "明天见。"]
    assert upload(voices_client, GOOD, name="anna", prompt_text="一二三。").status_code == 201
    again = upload(voices_client, GOOD, name="anna", prompt_text="四五六。")
    assert_error(again, 409, "conflict", "prompt_text", "already has this audio with another transcript")
    assert upload(voices_client, GOOD, name="anna").status_code == 200, "no transcript: the same voice"


def test_path_tricks_are_refused(voices_client: TestClient, refs: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(GOOD)
    os.symlink(secret, refs / "link.wav")
    for path, words in [
        (str(refs / ".." / "secret.wav"), "may not contain '..'"),
        ("../secret.wav", "may not contain '..'"),
        (str(secret), "outside the directories"),
        (str(refs / "link.wav"), "outside the directories"),
        ("/etc/passwd", "outside the directories"),
    ]:
        response = voices_client.post("/tts", data={"text": "hi", "audio_path": path})
        assert_error(response, 403, "forbidden", "audio_path", words)
    missing = voices_client.post("/tts", data={"text": "hi", "audio_path": "nothing.wav"})
    assert_error(missing, 404, "not_found", "audio_path", "is not a file")


@pytest.mark.parametrize(
    ("url", "status", "code", "words"),
    [
        ("http://example.org/me.wav", 403, "forbidden", "not on references.url_hosts"),
        ("http://127.0.0.1:9/me.wav", 403, "forbidden", "internal address (127.0.0.1)"),
        ("http://localhost:9/me.wav", 403, "forbidden", "internal address"),
        ("file:///etc/passwd", 400, "invalid_request", "only http and https"),
    ],
)
def test_disallowed_urls_are_refused(
    voices_client: TestClient, url: str, status: int, code: str, words: str
) -> None:
    response = voices_client.post("/api/synthesis", json={"text": "hi", "audio": url})
    assert_error(response, status, code, "audio", words)


def test_an_allowed_url_is_fetched_once_private_addresses_are_allowed(
    tmp_path: Path, cloning_engine: FakeEngine
) -> None:
    files = FastAPI()
    files.get("/me.wav")(lambda: Response(GOOD, media_type="audio/wav"))
    files.get("/big.wav")(lambda: Response(b"RIFF" + b"\0" * 2_000_000, media_type="audio/wav"))
    files.get("/moved.wav")(lambda: Response(status_code=302, headers={"Location": "/me.wav"}))
    settings = Settings(
        data_dir=tmp_path,
        default_engine="fake",
        references={"url_hosts": ["127.0.0.1"], "url_private": True, "max_bytes": 1_000_000},
    )
    with serving(files) as base, ready_client(settings, {"fake": cloning_engine}) as client:
        task = client.post("/api/synthesis", json={"text": "one two", "audio": f"{base}/me.wav"})
        assert task.status_code == 200, task.text
        stored = client.get("/v1/voices").json()["voices"][0]
        assert stored["kind"] == "cloned" and stored["seconds"] == pytest.approx(5.0)
        too_big = client.post("/api/synthesis", json={"text": "hi", "audio": f"{base}/big.wav"})
        assert_error(too_big, 413, "input_too_large", "audio", "the limit is 1000000 bytes (0.953674 MiB)")
        redirected = client.post("/api/synthesis", json={"text": "hi", "audio": f"{base}/moved.wav"})
        assert_error(redirected, 400, "invalid_request", "audio", "answered HTTP 302")


def test_a_url_is_fetched_from_the_address_that_was_checked(
    tmp_path: Path, cloning_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once, by the check: a second lookup (where DNS rebinding would answer an
    internal address) never happens, and the server still sees its own name."""
    from voxserve.voices import sources

    lookups: list[str] = []

    async def resolve_once(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.0.0.1"]

    monkeypatch.setattr(sources, "_resolve", resolve_once)
    hosts: list[str] = []
    files = FastAPI()

    @files.get("/me.wav")
    def me(request: Request) -> Response:
        hosts.append(request.headers["host"])
        return Response(GOOD, media_type="audio/wav")

    settings = Settings(
        data_dir=tmp_path,
        default_engine="fake",
        references={"url_hosts": ["voices.example"], "url_private": True},
    )
    with serving(files) as base, ready_client(settings, {"fake": cloning_engine}) as client:
        url = base.replace("127.0.0.1", "voices.example") + "/me.wav"
        task = client.post("/api/synthesis", json={"text": "one two", "audio": url})
        assert task.status_code == 200, task.text
    assert lookups == ["voices.example"] and hosts == [url.split("/")[2]]


def test_kokoro_blends_change_the_voice_reproducibly_and_can_be_saved(client: httpx.Client) -> None:
    def speak(voice: str) -> httpx.Response:
        body = {"input": "Good morning.", "voice": voice, "response_format": "wav", "model": "kokoro"}
        return client.post("/v1/audio/speech", json=body, headers={"Cache-Control": "no-store"})

    formula = "jf_alpha(2)+jm_kumo(1)"
    blended, again, alone = speak(formula), speak(formula), speak("jf_alpha")
    assert blended.status_code == 200, blended.text
    assert blended.content == again.content, "a blend is as deterministic as the voices it mixes"
    assert blended.content != alone.content
    assert_speech_like(decode(blended.content))
    saved = client.post("/v1/voices", data={"name": "alpha-kumo", "blend": formula})
    assert saved.status_code in (200, 201), saved.text
    assert saved.json()["engine"] == "kokoro" and saved.json()["blend"] == formula
    assert speak("alpha-kumo").content == blended.content
    assert_error(
        speak("jf_alpha(x)+jm_kumo"), 400, "invalid_request", "voice", "not 'name' or 'name(weight)'"
    )
    assert_error(speak("jf_alpha(2"), 400, "invalid_request", "voice", "part 'jf_alpha(2' is not")
    assert_error(speak("jf_alpha+nobody"), 404, "unknown_voice", "voice", "voice 'nobody' in blend")
    assert speak("alpha-kumo").headers["x-voxserve-voice"] == "alpha-kumo", "a saved blend by its name"
    refused = client.post("/v1/voices", data={"name": "bad", "blend": "jf_alpha+nobody"})
    assert_error(refused, 404, "unknown_voice", "blend", "voice 'nobody' in blend")
    malformed = client.post("/v1/voices", data={"name": "bad", "blend": "jf_alpha(2"})
    assert_error(malformed, 400, "invalid_request", "blend", "part 'jf_alpha(2' is not")


def test_a_reference_no_engine_can_use_is_stored_with_a_warning(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_engine="plain")
    with ready_client(settings, {"plain": FakeEngine(name="plain")}, raise_server_exceptions=False) as client:
        stored = upload(client, GOOD, name="me")
        assert stored.status_code == 201 and stored.json()["kind"] == "cloned"
        assert "no engine here can clone" in stored.json()["warning"]
        speak = client.post("/v1/audio/speech", json={"input": "hi", "voice": "me"})
        assert_error(speak, 422, "capability_missing", "voice", "cannot clone")
