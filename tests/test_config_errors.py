"""Settings mistakes said plainly, and the command line's own manners (--version, plain --help, a
jobs table that fits a terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console
from typer.testing import CliRunner

from voxserve.batch.jobs_cli import jobs_table
from voxserve.cli import app
from voxserve.config import CONFIG_FILE_ENV, Settings, load_settings
from voxserve.config_errors import explain, unknown_variables
from voxserve.engine_settings import EngineSettings
from voxserve.registry import check_engines


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "voxserve.toml"
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))  # loading sets it: put back as it was afterwards
    return path


def test_a_bad_file_is_explained_key_by_key(config_file: Path) -> None:
    config_file.write_text('prot = 9000\nlog_level = "loud"\n[jobs]\nworkers = "two"\n')
    with pytest.raises(ValidationError) as raised:
        load_settings(config_file)
    lines = explain(raised.value, Settings, config_file).splitlines()
    assert f"{config_file}: prot: not a setting; did you mean port?" in lines
    levels = "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"
    assert f"{config_file}: log_level: Input should be {levels} (got 'LOUD')" in lines
    assert any(line.startswith(f"{config_file}: jobs.workers:") and "(got 'two')" in line for line in lines)
    assert not any("pydantic.dev" in line for line in lines), "no links to the library's internals"


def test_engine_tables_are_checked_where_engines_are_built() -> None:
    """A kind's options are its own business: settings parse without the engines, and the
    registry refuses a bad table before anything is built, naming it and the closest kind."""
    settings = Settings(engines=[EngineSettings(name="k", kind="kokro")])
    with pytest.raises(ValueError, match=r"\[\[engines\]\] 'k' \(kind 'kokro'\): .*did you mean kokoro\?"):
        check_engines(settings)


ENGINE_MISTAKES = [
    (
        'max_concurency = 4\nurl = "http://gpu1:50000"',
        "max_concurency: not a setting; did you mean max_concurrency?",
    ),
    ('instanses = ["http://gpu1:50000"]', "instanses: not a setting; did you mean instances?"),
    ('url = "http://gpu1:50000"\nvoices = ["a"]', "voices: not a setting"),  # belongs in options
    ('url = "127.0.0.1:50111"', "url: needs a scheme and a host, such as 'http://127.0.0.1:50111'"),
    ('instances = ["gpu1:50000"]', "instances: needs a scheme and a host, such as 'http://gpu1:50000'"),
]


@pytest.mark.parametrize(
    ("fields", "said"), ENGINE_MISTAKES, ids=[said.split(":")[0] for _, said in ENGINE_MISTAKES]
)
def test_an_engine_table_refuses_unknown_keys_and_urls_without_a_scheme(
    config_file: Path, fields: str, said: str
) -> None:
    config_file.write_text(f"[[engines]]\nname = 'cosy'\nkind = 'cosyvoice'\n{fields}\n")
    result = CliRunner().invoke(app, ["config", "--config", str(config_file)])
    assert result.exit_code == 2, result.output
    assert f"{config_file}: engines[0].{said}" in result.output.replace("\n", "")


def test_tables_add_to_the_embedded_engines_unless_embedded_is_false() -> None:
    cosy = {"name": "cosy", "kind": "cosyvoice", "url": "http://gpu1:50000"}
    settings = Settings(engines=[cosy, {"name": "hibari", "kind": "hibari", "threads": 1}])
    assert [engine.name for engine in settings.engines][:3] == ["cosy", "hibari", "kokoro"]
    assert settings.engines[1].threads == 1, "a table named like an embedded engine replaces it"
    assert settings.default_engine == "cosy", "the first table is the default"
    assert Settings().default_engine == "kokoro"
    alone = Settings(engines=[cosy], embedded=False)
    assert [engine.name for engine in alone.engines] == ["cosy"]
    assert Settings(**alone.model_dump()).engines == alone.engines, "loading twice adds nothing"


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"embedded": False}, "embedded = false needs at least one [[engines]] table"),
        (
            {"engines": [{"name": "a", "kind": "hibari"}, {"name": "a", "kind": "kokoro"}]},
            "engines: two tables are named 'a'",
        ),
    ],
)
def test_there_are_engines_and_their_names_are_unique(given: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**given)
    assert said in explain(raised.value, Settings, None)


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('default_engine = "kokro"', "default_engine 'kokro' is not an engine here; choose one of kokoro"),
        (
            'default_engine = "kokoro"\nembedded = false\n[[engines]]\nname = "cosy"\nkind = "cosyvoice"\n'
            'url = "http://gpu1:50000"\noptions = { generation = 1, voices = ["中文女"] }',
            "default_engine 'kokoro' is not an engine here; choose one of cosy",
        ),
    ],
)
def test_the_default_engine_must_be_one_of_the_engines(config_file: Path, toml: str, said: str) -> None:
    config_file.write_text(toml + "\n")
    result = CliRunner().invoke(app, ["config", "--config", str(config_file)])
    assert result.exit_code == 2 and said in result.output, result.output


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    environ = {
        "VOXSERVE_PROT": "1",
        "VOXSERVE_JOBS__WORKRS": "2",
        "VOXSERVE_PORT": "9000",  # a setting
        "VOXSERVE_URL": "http://x",  # the commands' own
        "VOXSERVE_VOICE_ALIASES__NOVA": "x",  # inside a value: not checked
        "VOXSERVE_ZZZ": "1",
    }
    unknown = " is not a voxserve setting and changes nothing"
    assert unknown_variables(Settings, environ) == [
        f"VOXSERVE_JOBS__WORKRS{unknown}; did you mean VOXSERVE_JOBS__WORKERS?",
        f"VOXSERVE_PROT{unknown}; did you mean VOXSERVE_PORT?",
        f"VOXSERVE_ZZZ{unknown}",
    ]


def test_the_command_says_what_is_wrong_and_exits_2(config_file: Path) -> None:
    config_file.write_text("[[engines]]\nname = 'k'\nkind = 'kokro'\n")
    result = CliRunner().invoke(app, ["config", "--config", str(config_file)], env={"VOXSERVE_PROT": "1"})
    assert result.exit_code == 2
    assert "VOXSERVE_PROT is not a voxserve setting" in result.output
    assert "[[engines]] 'k' (kind 'kokro')" in result.output, "brackets shown as written, not as markup"
    assert "Traceback" not in result.output


def test_version_and_plain_help() -> None:
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("voxserve ")
    for command in (
        ["--help"],
        ["serve", "--help"],
        ["jobs", "submit", "--help"],
        ["keys", "create", "--help"],
    ):
        shown = runner.invoke(app, command)
        assert shown.exit_code == 0 and "--help" in shown.output
        assert "<bool>" not in shown.output, f"{command}: a flag shown as taking a value"


def test_the_jobs_table_fits_80_columns_with_whole_ids() -> None:
    job_id = "job_1796448939286_481812970a"
    row = (
        job_id,
        "succeeded",
        "chapter-one-of-the-book",
        "10/10",
        "35.1",
        "2026-12-05T05:35:39.295720+00:00",
    )
    console = Console(width=80, record=True)
    console.print(jobs_table([row]))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    (line,) = [line for line in lines if job_id in line]
    assert "succeeded" in line and "12-05 05:35" in line, lines


def test_state_lives_in_the_users_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The same directory wherever a command runs; the environment still wins."""
    monkeypatch.delenv("VOXSERVE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == tmp_path / "share" / "voxserve"
    monkeypatch.setenv("VOXSERVE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert Settings().data_dir == tmp_path / "elsewhere"


def test_a_prompt_recording_that_is_not_there_is_a_settings_mistake(config_file: Path) -> None:
    """Said when settings load, not as an engine that fails to load (and so never serves) later."""
    config_file.write_text(
        '[[engines]]\nname = "cosy"\nkind = "cosyvoice"\nurl = "http://gpu1:50000"\n'
        'options = { model = "iic/CosyVoice2-0.5B", voices = { xiaoyu = { audio = "/voices/xiaoyu.wav", '
        'text = "希望你以后能够做的比我还好呦。" } } }\n'
    )
    result = CliRunner().invoke(app, ["config", "--config", str(config_file)])
    assert result.exit_code == 2
    said = result.output.replace("\n", " ")
    assert "options.voices.prompts.xiaoyu.audio: no such file: /voices/xiaoyu.wav" in said, said
    assert "valid list" not in said, "one problem, not one per shape voices could take"
