"""The ``voxserve`` command as a user runs it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from harness.server import VOXSERVE

from tests.support.audio import assert_speech_like, decode

#: ``say`` with the fast English engine alone: it loads every configured engine, and these tests name it.
HIBARI_ONLY = {
    "VOXSERVE_ENGINES": json.dumps([{"name": "hibari", "kind": "hibari"}]),
    "VOXSERVE_EMBEDDED": "false",
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VOXSERVE), *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def test_say_writes_the_format_of_the_file_name(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "hello.ogg"
    result = run(
        "say",
        "Hello from the command line.",
        "-o",
        str(out),
        "--model",
        "hibari",
        "--data-dir",
        str(data_dir),
        env=HIBARI_ONLY,
    )
    assert result.returncode == 0, result.stderr
    assert "s of audio in" in result.stderr
    audio = decode(out.read_bytes())
    assert audio.codec == "opus"
    assert_speech_like(audio, min_seconds=1.0)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("x.xyz", (), "cannot tell the audio format from its name"),
        ("x.wav", ("--format", "mp3"), "names a .wav file, but the audio is mp3; name it .mp3"),
        ("x.mp3", ("--format", "midi"), "format 'midi' is not one of"),
    ],
)
def test_say_refuses_a_name_that_contradicts_the_format(
    tmp_path: Path, name: str, options: tuple[str, ...], message: str
) -> None:
    result = run("say", "Hello.", "-o", str(tmp_path / name), *options, "--data-dir", str(tmp_path))
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / name).exists() and not (tmp_path / "models").exists(), "refused before any work"


def test_say_takes_a_text_longer_than_a_request(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "long.ogg"
    text = "This sentence is one of many in a long text. " * 100  # 4,500 characters
    result = run(
        "say",
        text,
        "-o",
        str(out),
        "--format",
        "ogg",
        "--model",
        "hibari",
        "--data-dir",
        str(data_dir),
        env=HIBARI_ONLY,
    )
    assert result.returncode == 0, result.stderr
    assert "loading the model took" in result.stderr
    assert decode(out.read_bytes()).duration > 200


def test_say_reports_a_bad_request(tmp_path: Path, data_dir: Path) -> None:
    result = run(
        "say",
        "你好",
        "-o",
        str(tmp_path / "x.mp3"),
        "--model",
        "hibari",
        "--data-dir",
        str(data_dir),
        env=HIBARI_ONLY,
    )
    assert result.returncode == 1
    assert "capability_missing" in result.stderr and "does not speak 'zh'" in result.stderr


def test_settings_precedence_toml_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "voxserve.toml"
    config.write_text('port = 9000\nmax_input_chars = 8000\nlog_level = "DEBUG"\n')
    result = run("config", "--config", str(config), "--data-dir", "/srv/vox", env={"VOXSERVE_PORT": "9100"})
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["port"] == 9100  # environment beats the file
    assert settings["max_input_chars"] == 8000  # the file beats the default
    assert settings["data_dir"] == "/srv/vox"  # a flag beats everything
    assert settings["segment_chars"] == 200  # default


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "config file not found"), ("bogus_key = 1\n", "bogus_key"), ("port = 'x'\n", "port")],
)
def test_bad_config_is_refused_clearly(tmp_path: Path, content: str | None, message: str) -> None:
    config = tmp_path / "voxserve.toml"
    if content is not None:
        config.write_text(content)
    result = run("config", "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr


def test_voices_lists_every_engine_without_loading(tmp_path: Path) -> None:
    from voxserve.storage import LocalStore
    from voxserve.voices import VoiceLibrary

    VoiceLibrary(LocalStore(tmp_path)).add_blend("duet", "jf_alpha+jm_kumo", "kokoro")
    result = run("voices", "--data-dir", str(tmp_path))
    assert result.returncode == 0
    assert "jf_alpha" in result.stdout and "heart" in result.stdout and "alloy, coral, nova" in result.stdout
    assert re.search(r"zf_xiaobei\s+│ kokoro\s+│ zh \(Mandarin\)\s+│ female", result.stdout), result.stdout
    assert re.search(r"\(duet\)\s+│ kokoro\s+│\s+│ a blend: jf_alpha\+jm_kumo", result.stdout), result.stdout
    espeak = re.search(r"espeak\s+│ espeak\s+│ (\d+) languages: ", result.stdout)
    assert espeak and int(espeak.group(1)) >= 100, "the languages espeak-ng has, asked of it"
    assert not (tmp_path / "models").exists(), "listing voices must not assemble the model"


def test_a_port_in_use_is_said_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--data-dir", str(tmp_path), env=HIBARI_ONLY)
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in said and "another port with --port" in said


def test_jobs_commands_against_a_server(server: str, tmp_path: Path) -> None:
    text = tmp_path / "chapter.txt"
    text.write_text("The first sentence of the chapter. The second sentence follows it.\n", encoding="utf-8")
    options = (
        "--url",
        server,
        "--model",
        "hibari",
        "--name",
        "chapter",
        "--speed",
        "1.2",
        "--language",
        "en",
    )
    submitted = run("jobs", "submit", str(text), *options, "--idempotency-key", "chapter-1")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("job_") and f"queued {job_id}" in submitted.stderr
    again = run("jobs", "submit", str(text), *options, "--idempotency-key", "chapter-1")
    assert again.stdout.strip() == job_id and f"already queued as {job_id}" in again.stderr
    mismatch = run("jobs", "wait", job_id, "--url", server, "-o", str(tmp_path / "chapter.wav"))
    assert mismatch.returncode == 2 and "the audio is mp3; name it .mp3" in mismatch.stderr
    out = tmp_path / "chapter.mp3"
    waited = run("jobs", "wait", job_id, "--url", server, "-o", str(out))
    assert waited.returncode == 0, waited.stderr
    assert_speech_like(decode(out.read_bytes()), min_seconds=2.0)
    status = json.loads(run("jobs", "status", job_id, "--url", server).stdout)
    assert status["status"] == "succeeded" and status["progress"]["segments_done"] == 2
    assert job_id in run("jobs", "list", "--url", server, "--status", "succeeded", "--limit", "200").stdout
    assert (status["speed"], status["language"], status["model"]) == (1.2, "en", "hibari")
    canceled = run("jobs", "cancel", job_id, "--url", server)
    assert canceled.returncode == 0 and "had already succeeded: nothing to cancel" in canceled.stderr
    later = run("jobs", "submit", str(text), "--url", server, "--run-at", "2099-01-01T00:00:00Z")
    later_id = later.stdout.strip()
    assert json.loads(run("jobs", "status", later_id, "--url", server).stdout)["run_at"].startswith(
        "2099-01-01"
    )
    stopped = run("jobs", "cancel", later_id, "--url", server)
    assert stopped.returncode == 0 and f"{later_id}: canceled" in stopped.stderr
    waited_canceled = run("jobs", "wait", later_id, "--url", server)
    assert waited_canceled.returncode == 1 and "job canceled: canceled on request" in waited_canceled.stderr
    first = run("jobs", "list", "--url", server, "--limit", "1")
    assert first.stdout.count("\n") == 1 and later_id in first.stdout
    rest = run("jobs", "list", "--url", server, "--limit", "1", "--before", later_id)
    assert later_id not in rest.stdout and rest.stdout.count("\n") == 1


def test_jobs_commands_report_errors(server: str, tmp_path: Path) -> None:
    missing = run("jobs", "status", "job_nope", "--url", server)
    assert missing.returncode == 1 and "404 (job_not_found)" in missing.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    refused = run("jobs", "submit", str(empty), "--url", server)
    assert refused.returncode == 1 and "input is empty" in refused.stderr
    nofile = run("jobs", "submit", str(tmp_path / "nofile.txt"), "--url", server)
    assert nofile.returncode == 2 and "nofile.txt: no such file" in nofile.stderr
    assert "Traceback" not in nofile.stderr
    unknown = run("jobs", "wait", "job_nope", "--url", server)
    assert (
        unknown.returncode == 1
        and "404 (job_not_found)" in unknown.stderr
        and "segments" not in unknown.stderr
    )
    unreachable = run("jobs", "list", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach voxserve" in unreachable.stderr


def test_engines_command(server: str) -> None:
    result = run("engines", "--url", server)
    assert result.returncode == 0, result.stderr
    assert "kokoro" in result.stdout and "hibari" in result.stdout and "embedded" in result.stdout


@pytest.mark.parametrize(
    "module", ["voxserve.routing", "voxserve.engines", "voxserve.voices", "voxserve.cache"]
)
def test_each_package_imports_first(module: str) -> None:
    """No import cycle: whichever package a program imports first works."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_say_writes_a_wav_whose_header_has_its_length_and_says_when_it_came_from_the_cache(
    tmp_path: Path,
) -> None:
    out = tmp_path / "hello.wav"
    said = [
        run("say", "A text said twice.", "-o", str(out), "--data-dir", str(tmp_path), env=HIBARI_ONLY)
        for _ in range(2)
    ]
    assert [result.returncode for result in said] == [0, 0], said[0].stderr
    assert "(real-time factor 0." in said[0].stderr and "loading the model took" in said[0].stderr
    assert "(from the cache); planning took" in said[1].stderr and "no model was loaded" in said[1].stderr
    with wave.open(str(out)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert seconds == pytest.approx(decode(out.read_bytes()).duration, abs=0.01) and 0.5 < seconds < 5


def test_keys_made_listed_and_revoked_on_the_command_line(tmp_path: Path) -> None:
    from tests.support.api import ready_client
    from voxserve.config import Settings
    from voxserve.engines.fake import FakeEngine

    data = ["--data-dir", str(tmp_path)]
    made = run(
        "keys", "create", "team-a", "--scope", "speech", "--scope", "jobs", "--chars-per-day", "5000", *data
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("vx_k_") and "cannot be shown again" in made.stderr
    key_id = "_".join(token.split("_")[1:3])
    listed = run("keys", "list", *data)
    assert key_id in listed.stdout and "team-a" in listed.stdout and token not in listed.stdout
    shown = json.loads(run("keys", "show", key_id, *data).stdout)
    assert shown["scopes"] == ["speech", "jobs"] and shown["limits"]["chars_per_day"] == 5000
    assert shown["state"] == "active" and "hash" not in shown
    settings = Settings(data_dir=tmp_path, default_engine="fake", auth={"enabled": True})
    with ready_client(settings, {"fake": FakeEngine()}) as client:
        say = {"input": "hello there", "response_format": "wav"}
        assert client.post("/v1/audio/speech", json=say, headers={"X-API-Key": token}).status_code == 200
        assert run("keys", "revoke", key_id, *data).returncode == 0
        assert client.post("/v1/audio/speech", json=say, headers={"X-API-Key": token}).status_code == 401
    assert json.loads(run("keys", "show", key_id, *data).stdout)["state"] == "revoked"
    unknown = run("keys", "show", "k_000000000000", *data)
    assert unknown.returncode == 1 and "key_not_found" in unknown.stderr
    bad = run("keys", "create", "x", "--scope", "root", *data)
    assert bad.returncode == 2 and "unknown scope root" in bad.stderr
