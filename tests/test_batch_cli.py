"""``voxserve batch`` as a user runs it, against a real ``voxserve serve`` over a faulty test engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from harness.server import VOXSERVE, free_port, start_server

from tests.support.audio import decode
from tests.support.signals import GOOD

ENGINE = """
default_engine = "fake"
embedded = false
[jobs]
workers = 0
[[engines]]
name = "fake"
kind = "fake"
options = { delay = 0.1, fail_on = "flaky", fail_times = 2, reject_on = "forbidden", cloning = true }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("batch-server")
    (directory / "voxserve.toml").write_text(ENGINE)
    env = {"VOXSERVE_CONFIG": str(directory / "voxserve.toml"), "VOXSERVE_CACHE_MAX_BYTES": "0"}
    process = start_server(directory / "data", directory / "server.log", env)
    try:
        yield process.url
    finally:
        process.stop()


def batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VOXSERVE), "batch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VOXSERVE_API_KEY": ""},
    )


def manifest(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": text, "format": "wav"}) + "\n" for text in texts))
    return path


def results(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_every_item_made_in_order_retried_or_failed_with_its_reason(server: str, tmp_path: Path) -> None:
    texts = [f"Sentence number {n} of the batch." for n in range(20)]
    texts[5], texts[12] = "A flaky sentence, twice.", "A forbidden sentence."
    out = tmp_path / "out"
    run = batch(str(manifest(tmp_path / "items.jsonl", texts)), "-o", str(out), "--url", server)
    assert run.returncode == 1, run.stderr  # one item failed for good
    rows = results(out)
    assert [row["id"] for row in rows] == [f"item{n:06d}" for n in range(1, 21)], "input order"
    assert [row["status"] for row in rows].count("ok") == 19
    assert rows[5]["attempts"] == 3 and rows[5]["status"] == "ok", "two transient failures, retried"
    assert rows[12]["status"] == "failed" and rows[12]["attempts"] == 1
    assert "engine_rejected" in str(rows[12]["error"]) and "failed item000013" in run.stderr
    for row in rows:
        if row["status"] == "ok":
            audio = decode((out / str(row["output"])).read_bytes())
            assert audio.duration > 0.5
            assert audio.duration == pytest.approx(float(str(row["audio_seconds"])), abs=0.01)
    assert (out / "results.csv").read_text().splitlines()[0].startswith("id,line,status,output")
    made = {path.name: path.stat().st_mtime_ns for path in out.glob("*.wav")}
    again = batch(str(tmp_path / "items.jsonl"), "-o", str(out), "--url", server, "--json")
    summary = json.loads(again.stdout)
    assert (summary["ok"], summary["failed"]) == (19, 1)
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("*.wav")} == made, "nothing made again"
    retried = json.loads(
        batch(
            str(tmp_path / "items.jsonl"), "-o", str(out), "--url", server, "--json", "--retry-failed"
        ).stdout
    )
    assert retried["failed"] == 1 and "engine_rejected" in retried["results"][12]["error"]


def test_a_reference_recording_becomes_one_library_voice(server: str, tmp_path: Path) -> None:
    (tmp_path / "narrator.wav").write_bytes(GOOD)
    rows = [
        {"id": f"line{n}", "text": f"Line {n} in my own voice.", "reference": "narrator.wav"}
        for n in range(3)
    ]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = batch(str(items), "-o", str(tmp_path / "out"), "--url", server, "--captions")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "line0.srt").read_text().startswith("1\n00:00:00,000 --> ")
    assert json.loads((tmp_path / "out" / "line2.segments.json").read_text())["segments"][0]["start"] == 0.0
    cloned = [v for v in httpx.get(f"{server}/v1/voices").json()["voices"] if v["kind"] == "cloned"]
    assert len(cloned) == 1, "uploaded once, used by every item"


def test_bad_rows_are_all_reported_before_anything_is_sent(server: str, tmp_path: Path) -> None:
    bad = tmp_path / "items.csv"
    bad.write_text("id,text,speed\nok,Fine.,1\n../x,Escape.,1\nslow,Slow.,9\n")
    run = batch(str(bad), "-o", str(tmp_path / "out"), "--url", server)
    assert run.returncode == 2
    assert "line 3: id: String should match pattern" in run.stderr and "line 4: speed:" in run.stderr
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_cleanly_and_the_next_run_continues(server: str, tmp_path: Path) -> None:
    items = manifest(tmp_path / "items.jsonl", [f"Item {n} says a few words." for n in range(60)])
    out = tmp_path / "out"
    command = [str(VOXSERVE), "batch", str(items), "-o", str(out), "--url", server, "-j", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.wav"))) < 6:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "run again to continue" in stderr
    first = results(out)
    done = {row["id"] for row in first if row["status"] == "ok"}
    # the two in flight at the signal may have written their file and not yet said so: made again
    assert 4 <= len(done) < 60 and {row["status"] for row in first} == {"ok", "pending"}
    assert all((out / f"{name}.wav").is_file() for name in done), "every item said made has its file"
    assert not list(out.glob(".*.part")), "no partial file left"
    kept = {name: (out / f"{name}.wav").stat().st_mtime_ns for name in done}
    finished = batch(str(items), "-o", str(out), "--url", server)
    assert finished.returncode == 0, finished.stderr
    assert all(row["status"] == "ok" for row in results(out))
    assert {name: (out / f"{name}.wav").stat().st_mtime_ns for name in done} == kept


def test_a_server_that_cannot_be_reached_stops_the_run_early_and_a_later_run_continues(
    server: str, tmp_path: Path
) -> None:
    """1,000 items against a port nothing listens on: one clear error in seconds, not one connection
    error per item; nothing is marked failed (with one attempt each, too), so a later run against
    the server makes them. The two runs against the closed port go at once."""
    closed = f"http://127.0.0.1:{free_port()}"
    many = manifest(tmp_path / "items.jsonl", [f"Item {n} is short." for n in range(1000)])
    few = manifest(tmp_path / "few.jsonl", [f"Item {n} is short." for n in range(4)])
    out, later = tmp_path / "out", tmp_path / "later"
    started = time.monotonic()
    runs = [
        subprocess.Popen(
            [str(VOXSERVE), "batch", str(manifest_), "-o", str(to), "--url", closed, *more],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "VOXSERVE_API_KEY": ""},
        )
        for manifest_, to, more in ((many, out, ()), (few, later, ("--attempts", "1")))
    ]
    said = [run.communicate(timeout=60)[1] for run in runs]
    took = time.monotonic() - started
    assert [run.returncode for run in runs] == [3, 3], said
    assert f"cannot reach the server at {closed}" in said[0] and "no connection for" in said[0]
    assert "connection refused" in said[0] and "run the same command again to continue" in said[0]
    assert took < 15, f"{took:.1f} s"
    assert {row["status"] for row in results(out)} == {"pending"}, "nothing given up on"
    assert {row["status"] for row in results(later)} == {"pending"}, "a refused try takes no attempt"
    resumed = batch(str(few), "-o", str(later), "--url", server)
    assert resumed.returncode == 0, resumed.stderr
    assert [row["status"] for row in results(later)] == ["ok"] * 4


def test_a_book_read_aloud_chapter_by_chapter(server: str, tmp_path: Path) -> None:
    book = tmp_path / "tale.md"
    book.write_text(
        "# The Tale\n\nIt opens.\n\n## Chapter One\n\nThe wind rose.\nAlice: Who is there?\n\n"
        "## Chapter Two\n\nIt ended.\n"
    )
    out = tmp_path / "out"
    options = ["--author", "Ann Author", "--narrator", "Ned", "--year", "2026"]
    options += ["--voices", '{"Alice": "af_bella"}', "--chapter-voice", "3=am_michael"]
    run = subprocess.run(
        [str(VOXSERVE), "book", str(book), "-o", str(out), "--url", server, *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "3 chapters" in run.stderr
    listing = json.loads((out / "index.json").read_text())
    assert [c["title"] for c in listing["chapters"]] == ["Opening", "Chapter One", "Chapter Two"]
    with av.open(str(out / "tale.m4b")) as combined:
        marks = [
            (m["metadata"]["title"], round(float(m["start"] * (m["time_base"] or 1)), 1))
            for m in combined.chapters()
        ]
        seconds = float(combined.duration or 0) / 1e6
        tags = dict(combined.metadata)
    assert marks == [(c["title"], round(c["start"], 1)) for c in listing["chapters"]]
    assert (tags["title"], tags["artist"], tags["composer"]) == ("The Tale", "Ann Author", "Ned")
    assert seconds == pytest.approx(sum(c["seconds"] for c in listing["chapters"]), abs=0.2)
    for chapter in listing["chapters"]:
        assert decode((out / chapter["file"]).read_bytes()).duration == pytest.approx(
            chapter["seconds"], abs=0.05
        )
    segments = json.loads((out / "tale.segments.json").read_text())["segments"]
    assert [s.get("speaker") for s in segments if "there" in s["text"]] == ["Alice"]
    two = next(s for s in segments if s["text"].startswith("Chapter Two"))
    assert two["start"] == pytest.approx(listing["chapters"][2]["start"], abs=0.05), (
        "captions on the book's clock"
    )
    assert (out / "tale.srt").read_text().startswith("1\n00:00:00,000 --> ")
    assert (out / "chapter003.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> "), "and per chapter"
    made = {path.name: path.stat().st_mtime_ns for path in out.glob("chapter*.mp3")}
    again = subprocess.run(
        [str(VOXSERVE), "book", str(book), "-o", str(out), "--url", server, *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and {p.name: p.stat().st_mtime_ns for p in out.glob("chapter*.mp3")} == made


def test_a_capacity_limited_faulty_engine_gets_every_item_made(tmp_path: Path) -> None:
    """The seed's set-up: an engine that runs out of memory past 3 at once and fails 10 % at random."""
    from harness.instances import engine_instances

    with engine_instances(1, capacity=3, seconds_per_char=0.002, error_rate=0.1) as found:
        config = tmp_path / "voxserve.toml"
        config.write_text(
            'embedded = false\n[jobs]\nworkers = 0\n[[engines]]\nname = "cosy"\nkind = "cosyvoice"\n'
            f'url = "{found[0][0]}"\noptions = {{ generation = 1, voices = ["中文女"] }}\n'
        )
        env = {"VOXSERVE_CONFIG": str(config), "VOXSERVE_CACHE_MAX_BYTES": "0"}
        server = start_server(tmp_path / "data", tmp_path / "server.log", env)
        try:
            texts = [f"第{n}句话，今天天气很好。" for n in range(40)]
            items = manifest(tmp_path / "items.jsonl", texts)
            run = batch(str(items), "-o", str(tmp_path / "out"), "--url", server.url, "--attempts", "8")
        finally:
            server.stop()
    assert run.returncode == 0, run.stderr
    rows = results(tmp_path / "out")
    assert [row["id"] for row in rows] == [f"item{n:06d}" for n in range(1, 41)]
    assert all(row["status"] == "ok" for row in rows)
    for row in rows:
        assert decode((tmp_path / "out" / str(row["output"])).read_bytes()).duration > 0.2
