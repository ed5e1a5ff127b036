"""The ``command`` kind: any speech program as an engine, confined; espeak-ng for every other language."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.support.api import ready_client
from tests.support.audio import decode
from voxserve.config import ESPEAK_NG_OPTIONS, Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines import SegmentRequest
from voxserve.engines.command import CommandEngine, CommandOptions, discovered
from voxserve.engines.kind import BuildContext
from voxserve.errors import EngineOverloaded, EngineTimeout, EngineUnavailable
from voxserve.registry import build_engine
from voxserve.storage import LocalStore

PROGRAM = Path(__file__).parents[1] / "harness" / "servers" / "speech_cli.py"


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv("RECORD", str(path))
    return path


def options(**overrides: Any) -> CommandOptions:
    table: dict[str, Any] = {
        "command": [sys.executable, str(PROGRAM), "32000", "{language}", "{voice}"],
        "languages": {"en": "english", "de": "german"},
        "voices": {"low": "v1", "high": "v2"},
        "sample_rate": 16000,
        "timeout": 5,
        **overrides,
    }
    return CommandOptions(**table)


async def speak(engine: CommandEngine, text: str, language: str = "en", voice: str = "low") -> np.ndarray:
    request = SegmentRequest(text=text, language=language, voice=voice)
    return np.concatenate([chunk async for chunk in engine.synthesize(request)])


@pytest.fixture
async def engine(tmp_path: Path, record: Path) -> CommandEngine:
    engine = CommandEngine("cli", options(), tmp_path / "work", max_concurrency=2)
    await engine.load()
    return engine


async def test_text_goes_on_stdin_and_placeholders_fill_the_arguments(
    engine: CommandEngine, record: Path
) -> None:
    import json

    audio = await speak(engine, "--help me", language="de", voice="high")
    run = json.loads(record.read_text())
    assert run["argv"] == ["32000", "german", "v2"] and run["text"] == "--help me"
    # the program wrote 32 kHz; the engine delivers the rate it declares
    assert engine.capabilities.sample_rate == 16000
    assert audio.size == pytest.approx(16000 * 0.05 * len("--help me"), rel=0.01)
    assert np.abs(audio).max() > 0.1


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("fail", EngineUnavailable, "exited with 1: bad things happened\nerror: the model broke"),
        ("oom", EngineOverloaded, "CUDA out of memory"),
        ("junk", EngineUnavailable, "wrote no audio FFmpeg can read"),
        ("flood", EngineUnavailable, "wrote more than 1048576 bytes; killed"),
    ],
)
async def test_failures_become_errors_routing_can_act_on(
    tmp_path: Path, record: Path, text: str, error: type[Exception], message: str
) -> None:
    engine = CommandEngine("cli", options(max_output_bytes=1024 * 1024), tmp_path / "work", 1)
    await engine.load()
    with pytest.raises(error, match=message):
        await speak(engine, text)


async def test_nothing_written_is_no_audio(engine: CommandEngine) -> None:
    assert (await speak(engine, "silent")).size == 0  # the pipeline's EmptyAudio names the segment


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_a_run_past_its_timeout_is_killed(tmp_path: Path, record: Path) -> None:
    import json

    engine = CommandEngine("cli", options(timeout=0.5), tmp_path / "work", 1)
    await engine.load()
    started = time.monotonic()
    with pytest.raises(EngineTimeout, match=r"ran longer than 0\.5 s; killed"):
        await speak(engine, "hang")
    assert time.monotonic() - started < 3
    assert not alive(json.loads(record.read_text())["pid"])


async def test_a_cancelled_request_kills_its_run(engine: CommandEngine, record: Path) -> None:
    import json

    task = asyncio.create_task(speak(engine, "hang"))
    while not record.exists():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(json.loads(record.read_text())["pid"])


async def test_output_files_stay_in_the_engine_directory_and_are_removed(
    tmp_path: Path, record: Path
) -> None:
    script = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
    source = tmp_path / "tone.wav"
    from tests.support.signals import GOOD

    source.write_bytes(GOOD)
    table = options(command=[sys.executable, "-c", script, str(source), "{output}"], output="file")
    engine = CommandEngine("cli", table, tmp_path / "work", 1)
    await engine.load()
    audio = await speak(engine, "hello")
    assert audio.size == pytest.approx(16000 * 5.0, rel=0.01)
    assert list((tmp_path / "work" / "out").iterdir()) == []


WRAPPER = Path(__file__).parents[1] / "harness" / "servers" / "glmtts_wrapper.py"


async def test_a_wrapper_with_the_seeds_flags_runs_as_a_command_and_clones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 002's GLM-TTS wrapper (--input_text ... --prompt_audio ... --output_path ... --seed ...)."""
    import json

    from tests.support.signals import GOOD, tone
    from voxserve.audio.pcm import wav_bytes
    from voxserve.config import ReferenceSettings
    from voxserve.voices import VoiceLibrary, check_reference

    record = tmp_path / "wrapper.json"
    monkeypatch.setenv("GLMTTS_RECORD", str(record))
    narrator = tmp_path / "narrator.wav"
    narrator.write_bytes(wav_bytes(tone(3.0), 24000))
    table = options(
        command=[
            sys.executable,
            str(WRAPPER),
            "--input_text={text}",
            "--prompt_audio={reference}",
            "--output_path={output}",
            "--sample_rate=24000",
            "--seed={seed}",
        ],
        text_via="argument",
        output="file",
        languages={"zh": "zh"},
        voices={"narrator": str(narrator)},
        sample_rate=24000,
    )
    engine = CommandEngine("glm-wrapper", table, tmp_path / "work", 1)
    await engine.load()
    assert engine.capabilities.cloning and engine.capabilities.seeded
    request = SegmentRequest(text="--seed=1 你好", language="zh", voice="narrator", seed=7)
    audio = np.concatenate([chunk async for chunk in engine.synthesize(request)])
    assert audio.size == int(24000 * 0.08 * len("--seed=1 你好"))
    run = json.loads(record.read_text())
    assert (run["input_text"], run["prompt_audio"], run["seed"]) == ("--seed=1 你好", str(narrator), 7)
    library = VoiceLibrary(LocalStore(tmp_path))
    voice, _ = library.add_reference(check_reference(GOOD, ReferenceSettings()))
    cloned = SegmentRequest(text="你好", language="zh", voice="narrator", reference=library.reference(voice))
    assert [chunk async for chunk in engine.synthesize(cloned)]
    assert json.loads(record.read_text())["prompt_audio"] == str(library.audio_path(voice))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"command": ["say", "{txt}"]},
            "names txt; placeholders are language, output, reference, seed, text, voice",
        ),
        ({"command": ["say", "{text"]}, "expected '}'"),
        ({"command": ["say", "{text}"], "text_via": "argument"}, "must follow '--'"),
        ({"command": ["say", "{text}"]}, "text_via is 'stdin'"),
        ({"command": ["say"], "text_via": "argument"}, r"needs \{text\}"),
        ({"command": ["say"], "output": "file"}, r"an \{output\} argument go together"),
        ({"command": ["say", "-o", "{output}"]}, r"an \{output\} argument go together"),
        ({"command": ["say"], "languages": {}}, "give languages, discover_languages, or both"),
        (
            {"command": ["say"], "discover_languages": {"command": ["say", "-l"], "pattern": "x"}},
            "needs a group",
        ),
    ],
)
def test_a_command_that_could_escape_its_confinement_is_refused(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CommandOptions(**{"languages": {"en": "en"}, **table})


def test_bound_or_separated_text_arguments_are_fine() -> None:
    assert CommandOptions(command=["say", "--text={text}"], text_via="argument", languages={"en": "en"})
    assert CommandOptions(command=["say", "--", "{text}"], text_via="argument", languages={"en": "en"})


def test_discovered_languages_prefer_the_plain_tag() -> None:
    lines = [
        "Pty Language Age/Gender",
        " 5  en-029  --/M",
        " 5  en-gb  --/M",
        " 5  en-us --/M",
        " 5  de  --/M",
        " 5  de-ch --/M",
        " 5  cmn  --/M",
        "junk",
    ]
    assert discovered(lines, r"^\s*\d+\s+(\S+)") == {"en": "en-gb", "de": "de", "zh": "cmn"}


# -- Debian's espeak-ng -------------------------------------------------------------------------


@pytest.fixture
def espeak(tmp_path: Path) -> EngineSettings:
    return EngineSettings(name="espeak", kind="command", options=ESPEAK_NG_OPTIONS)


async def test_espeak_ng_speaks_every_language_it_knows(espeak: EngineSettings, tmp_path: Path) -> None:
    engine = build_engine(espeak, BuildContext(ThreadPoolExecutor(1), tmp_path, 2))
    await engine.load()
    languages = engine.capabilities.languages
    assert len(languages) > 100 and {"de", "fr", "ru", "ar", "hi", "ko", "sw", "zh", "en"} <= languages
    assert isinstance(engine, CommandEngine)
    audio = await speak(engine, "Guten Tag, wie geht es Ihnen?", language="de", voice="espeak-f")
    assert 1.0 < audio.size / 22050 < 4.0 and np.abs(audio).max() > 0.2


@pytest.fixture
def fallback_client(tmp_path: Path, espeak: EngineSettings) -> Iterator[TestClient]:
    """An English-only first engine, and espeak-ng for every other language."""
    english = EngineSettings(name="tones", kind="fake", options={"languages": ["en"]})
    settings = Settings(
        data_dir=tmp_path,
        embedded=False,
        engines=[english, espeak],
        default_engine="tones",
        jobs={"workers": 0},
    )
    with ready_client(settings) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "engine"),
    [
        ({"input": "Hello there, how are you?"}, "tones"),
        ({"input": "Guten Tag, wie geht es Ihnen?", "language": "de-DE"}, "espeak"),
        ({"input": "Привет, как у тебя дела?"}, "espeak"),  # Cyrillic: Russian, without being told
        ({"input": "안녕하세요, 만나서 반갑습니다."}, "espeak"),
    ],
)
def test_languages_the_first_engine_lacks_fall_back_to_espeak_ng(
    fallback_client: TestClient, body: dict[str, str], engine: str
) -> None:
    response = fallback_client.post("/v1/audio/speech", json={**body, "response_format": "wav"})
    assert response.status_code == 200, response.text
    assert response.headers["x-voxserve-engine"] == engine
    audio = decode(response.content)
    assert audio.codec == "pcm_s16le" and 1.0 < audio.duration < 6.0 and np.abs(audio.samples).max() > 0.1


def test_a_language_no_engine_speaks_is_refused_before_synthesis(fallback_client: TestClient) -> None:
    response = fallback_client.post("/v1/audio/speech", json={"input": "hello", "language": "tlh"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (
        error["param"] == "language"
        and "'tlh' is not spoken here; choose one of af, am, an" in error["message"]
    )
