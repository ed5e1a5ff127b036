"""The recipes of docs/engines.md for servers without a kind of their own, run as written against
stand-ins of those servers: Kokoro-FastAPI through the ``openai`` kind, Coqui's XTTS server through
the ``command`` kind (curl)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from harness.servers.coqui import coqui_app
from harness.servers.engines import Behaviour, serving, tone
from harness.servers.kokoro_fastapi import kokoro_fastapi_app

from tests.support.api import SPEECH, assert_error, ready_client
from tests.support.audio import decode
from voxserve.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs" / "engines.md"


def recipe(name: str) -> dict[str, Any]:
    """The ``[[engines]]`` table called ``name`` in docs/engines.md, as written there."""
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    tables = [table for block in blocks for table in tomllib.loads(block).get("engines", [])]
    (table,) = [table for table in tables if table["name"] == name]
    return dict(table)


def test_kokoro_fastapi_through_the_openai_kind(tmp_path: Path) -> None:
    behaviour = Behaviour()
    table = recipe("kokoro-fastapi")
    with serving(kokoro_fastapi_app(behaviour)) as url:
        table["url"] = url
        settings = Settings(
            data_dir=tmp_path,
            embedded=False,
            engines=[table],
            default_engine=table["name"],
            jobs={"workers": 0},
        )
        with ready_client(settings) as client:
            body = {
                "model": "kokoro-fastapi",
                "input": "Hello there.",
                "voice": "bf_emma",
                "response_format": "wav",
            }
            response = client.post(SPEECH, json={**body, "instructions": "whisper"})
            assert response.status_code == 200, response.text
            assert response.headers["x-voxserve-ignored"] == "instructions", "its model ignores them"
            audio = decode(response.content)
            assert audio.sample_rate == 24000
            assert audio.duration == pytest.approx(tone("Hello there.", 24000).size / 24000 + 0.25, abs=0.05)
    sent = behaviour.requests[0]
    assert (sent["model"], sent["voice"], sent["response_format"]) == ("kokoro", "bf_emma", "pcm")


def test_kokoro_fastapis_refusal_of_a_voice_is_a_422(tmp_path: Path) -> None:
    behaviour = Behaviour()
    table = recipe("kokoro-fastapi")
    table["options"]["voices"] = ["af_heart", "af_nobody"]
    with serving(kokoro_fastapi_app(behaviour)) as url:
        table["url"] = url
        settings = Settings(
            data_dir=tmp_path,
            embedded=False,
            engines=[table],
            default_engine=table["name"],
            jobs={"workers": 0},
        )
        with ready_client(settings) as client:
            body = {"model": "kokoro-fastapi", "input": "Hello.", "voice": "af_nobody"}
            refused = client.post(SPEECH, json=body)
            assert_error(refused, 422, "engine_rejected", None, "Voice 'af_nobody' not found")


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl: make test installs it")
def test_coquis_xtts_server_through_the_command_kind(tmp_path: Path) -> None:
    behaviour = Behaviour()
    table = recipe("xtts")
    with serving(coqui_app(behaviour)) as url:
        table["options"]["command"][-1] = f"{url}/api/tts"
        table["options"]["voices"]["nobody"] = "Nobody Known"
        settings = Settings(
            data_dir=tmp_path, embedded=False, engines=[table], default_engine="xtts", jobs={"workers": 0}
        )
        with ready_client(settings) as client:
            text = "今天天气很好。"
            response = client.post(
                SPEECH, json={"model": "xtts", "input": text, "voice": "craig", "response_format": "wav"}
            )
            assert response.status_code == 200, response.text
            audio = decode(response.content)
            assert audio.sample_rate == 24000
            assert audio.duration == pytest.approx(tone(text, 24000).size / 24000 + 0.25, abs=0.05)
            failed = client.post(SPEECH, json={"model": "xtts", "input": "Hello.", "voice": "nobody"})
            assert_error(failed, 503, "engine_unavailable", None, "500")
    spoken, unknown = behaviour.requests
    assert spoken == {"text": text, "speaker_id": "Craig Gutsy", "language_id": "zh-cn"}
    assert unknown["speaker_id"] == "Nobody Known"
