"""Engine kinds as plug-ins: found from their modules, options checked when settings load."""

from __future__ import annotations

import sys
import types
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from fastapi import FastAPI, Response
from harness.servers.engines import serving, tone

from tests.support.api import ready_client
from tests.support.audio import decode
from voxserve import registry
from voxserve.audio import FORMATS, StreamEncoder
from voxserve.config import Settings
from voxserve.engine_settings import EngineSettings
from voxserve.engines.fake import FakeEngine, FakeOptions
from voxserve.engines.kind import BuildContext, EngineKind, EngineOptions
from voxserve.registry import build_engine, check_engines, kinds

GLM_VOICES = {"a": {"audio": __file__, "text": "一二三"}}  # a file that exists


def test_every_engine_module_is_a_kind() -> None:
    assert set(kinds()) == {
        "command",
        "cosyvoice",
        "emotivoice",
        "fake",
        "fishspeech",
        "glmtts",
        "hibari",
        "kokoro",
        "openai",
    }
    assert all(kind.summary for kind in kinds().values())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"kind": "cosyvoice", "url": "http://x", "options": {"colour": 1}},
            r"options\.colour: not a setting",
        ),
        (
            {"kind": "cosyvoice", "url": "http://x", "options": {"sample_rate": "fast"}},
            r"options\.sample_rate",
        ),
        (
            {"kind": "cosyvoice", "url": "http://x", "options": {"api": "grpc"}},
            r"options\.api: Input should be",
        ),
        ({"kind": "emotivoice"}, "give url or instances"),
        ({"kind": "glmtts", "url": "http://x", "options": {}}, r"options\.voices: Field required"),
        (
            {"kind": "glmtts", "url": "http://x", "options": {"voices": {"a": {"audio": "/a"}}}},
            r"options\.voices\.a\.text: Field required",
        ),
        (
            {"kind": "glmtts", "url": "http://x", "options": {"voices": GLM_VOICES, "sample_rate": 16000}},
            "24000",
        ),
        ({"kind": "glmtts", "options": {"voices": GLM_VOICES}}, "give url or instances"),
        ({"kind": "glmtts", "options": {"voices": GLM_VOICES, "interface": "batch"}}, "needs workdir"),
        (
            {
                "kind": "glmtts",
                "url": "http://x",
                "options": {"voices": GLM_VOICES, "workdir": "/opt/GLM-TTS"},
            },
            "workdir do not apply to interface = 'gradio'",
        ),
        (
            {
                "kind": "glmtts",
                "url": "http://x",
                "options": {"voices": GLM_VOICES, "interface": "batch", "workdir": "/opt/GLM-TTS"},
            },
            "url, instances and backup are for engines on servers",
        ),
        ({"kind": "kokoro", "url": "http://x"}, "url, instances and backup are for engines on servers"),
        ({"kind": "fake", "options": {"delay": -1}}, r"options\.delay: Input should be greater"),
        ({"kind": "kokoro", "options": {"voices": ["x"]}}, r"options\.voices: not a setting"),
        (
            {"kind": "openai", "url": "http://x", "options": {"voics": ["a"], "sample_rate": 24000}},
            r"options\.voics: not a setting; did you mean voices\?",
        ),
        ({"kind": "tortoise"}, "engine kind 'tortoise' is not known; choose one of command, cosyvoice"),
    ],
)
def test_a_bad_table_fails_when_settings_load_naming_table_and_field(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        check_engines(Settings(engines=[{"name": "mine", **table}]))
    assert "[[engines]] 'mine'" in str(raised.value)


def test_environment_settings_are_checked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSERVE_ENGINES", '[{"name": "f", "kind": "fake", "options": {"languages": "en"}}]')
    with pytest.raises(ValueError, match=r"\[\[engines\]\] 'f' \(kind 'fake'\): options\.languages"):
        check_engines(Settings())


def test_checked_options_reach_the_engine(tmp_path: Path) -> None:
    config = EngineSettings(
        name="tones", kind="fake", options={"sample_rate": 8000, "languages": ["en", "de"]}
    )
    engine = build_engine(config, BuildContext(ThreadPoolExecutor(1), tmp_path, 2))
    assert isinstance(engine, FakeEngine) and engine.name == "tones"
    assert engine.capabilities.sample_rate == 8000 and engine.capabilities.languages == {"en", "de"}


class EchoOptions(EngineOptions):
    rate: int = 16000


def _echo(config: EngineSettings, options: EchoOptions, context: BuildContext) -> FakeEngine:
    return FakeEngine(name=config.name, **FakeOptions(sample_rate=options.rate).model_dump())


ECHO = EngineKind("echo", EchoOptions, _echo, "a plug-in from another distribution")


def test_an_installed_distribution_adds_a_kind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry = EntryPoint(name="echo", value=f"{__name__}:ECHO", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry] if group == entry.group else [])
    registry.kinds.cache_clear()
    try:
        settings = Settings(engines=[{"name": "e", "kind": "echo", "options": {"rate": 8000}}])
        engine = build_engine(settings.engines[0], BuildContext(ThreadPoolExecutor(1), tmp_path, 1))
        assert engine.capabilities.sample_rate == 8000
        with pytest.raises(ValueError, match=r"options\.rate: Input should be a valid integer"):
            check_engines(Settings(engines=[{"name": "e", "kind": "echo", "options": {"rate": "x"}}]))
    finally:
        registry.kinds.cache_clear()


DOCS = Path(__file__).parents[1] / "docs" / "engines.md"


def documented_module(marker: str) -> types.ModuleType:
    """The Python block of docs/engines.md that starts with ``marker``, imported as a module."""
    text = DOCS.read_text()
    start = text.index(f"```python\n{marker}") + len("```python\n")
    module = types.ModuleType("speakbox_voxserve")
    exec(compile(text[start : text.index("```", start)], str(DOCS), "exec"), module.__dict__)
    return module


def test_the_engine_written_in_the_docs_serves_the_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """docs/engines.md#adding-an-engine, as written: its module, its table, its entry point."""
    monkeypatch.setitem(
        sys.modules, "speakbox_voxserve", documented_module("# src/voxserve/engines/speakbox.py")
    )
    entry = EntryPoint(name="speakbox", value="speakbox_voxserve:KIND", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry])
    registry.kinds.cache_clear()
    spoken: list[dict[str, str]] = []
    box = FastAPI()

    @box.post("/speak")
    async def speak(body: dict[str, str]) -> Response:
        spoken.append(body)
        encoder = StreamEncoder(FORMATS["wav"], 22050, 22050)
        return Response(encoder.write(tone(body["text"], 22050)) + encoder.finish(), media_type="audio/wav")

    try:
        with serving(box) as url:
            table = {
                "name": "box",
                "kind": "speakbox",
                "instances": [url],
                "options": {"voices": ["anna", "ben"]},
            }
            settings = Settings(
                data_dir=tmp_path, embedded=False, engines=[table], default_engine="box", jobs={"workers": 0}
            )
            with ready_client(settings) as client:
                body = {"input": "Hello from the box.", "voice": "ben", "response_format": "wav"}
                response = client.post("/v1/audio/speech", json=body)
    finally:
        registry.kinds.cache_clear()
    assert response.status_code == 200, response.text
    assert response.headers["x-voxserve-engine"] == "box" and spoken == [
        {"text": "Hello from the box.", "speaker": "ben"}
    ]
    audio = decode(response.content)
    assert audio.sample_rate == 22050 and audio.duration == pytest.approx(
        tone("Hello from the box.", 22050).size / 22050, abs=0.4
    )


def test_every_engine_table_in_the_docs_loads() -> None:
    """The TOML of docs/engines.md, as written, is accepted (plug-in kinds aside)."""
    import re
    import tomllib

    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    tables = [table for block in blocks for table in tomllib.loads(block).get("engines", [])]
    checked = [table for table in tables if table["kind"] in kinds()]
    assert {table["kind"] for table in checked} >= {
        "command",
        "cosyvoice",
        "emotivoice",
        "openai",
        "glmtts",
        "fishspeech",
    }
    for table in checked:
        assert Settings(engines=[table]).engines[0].name == table["name"]
