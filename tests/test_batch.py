"""The batch's parts alone: manifests read and checked whole, the adaptive concurrency limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from voxserve.batch.concurrency import AdaptiveLimit, with_waiting
from voxserve.batch.manifest import ManifestError, read_manifest
from voxserve.batch.run import engines_capacity


def test_a_csv_manifest_with_ids_made_where_absent(tmp_path: Path) -> None:
    (tmp_path / "chapter.txt").write_text("A chapter from a file.", encoding="utf-8")
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "id,text,file,voice,format,seed,speed\nintro,Hello there.,,alloy,wav,7,1.1\n,,chapter.txt,,ogg,,\n",
        encoding="utf-8",
    )
    first, second = read_manifest(manifest, 1000)
    assert (first.id, first.text, first.format, first.output_name) == (
        "intro",
        "Hello there.",
        "wav",
        "intro.wav",
    )
    assert first.fields == {"voice": "alloy", "seed": 7, "speed": 1.1}
    assert (second.id, second.text, second.output_name) == (
        "item000003",
        "A chapter from a file.",
        "item000003.ogg",
    )
    assert first.digest != second.digest and read_manifest(manifest, 1000)[0].digest == first.digest


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(
        '{"id": "a", "text": "fine"}\n'
        '{"id": "b"}\n'
        "not json\n"
        '{"id": "../escape", "text": "x"}\n'
        '{"id": "a", "text": "again"}\n'
        '{"text": "x", "speed": 9}\n'
        '{"text": "x", "format": "midi"}\n'
        '{"file": "../../etc/passwd"}\n'
        '{"text": "x", "colour": "blue"}\n'
        '{"text": "' + "y" * 50 + '"}\n',
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as refused:
        read_manifest(manifest, 40)
    problems = refused.value.problems
    assert [problem.split(":")[0] for problem in problems] == [f"line {n}" for n in range(2, 11)]
    assert "give either text or file" in problems[0]
    assert "not JSON" in problems[1]
    assert "id: String should match pattern" in problems[2]
    assert "id 'a' is used again (line 1 has it)" in problems[3]
    assert "speed: Input should be less than or equal to 4" in problems[4]
    assert "format 'midi' is not one of" in problems[5]
    assert "outside the manifest's folder" in problems[6]
    assert "colour: Extra inputs are not permitted" in problems[7]
    assert "the text is 50 characters; the limit is 40" in problems[8]


def test_a_folder_of_text_files(tmp_path: Path) -> None:
    for name in ("b", "a"):
        (tmp_path / f"{name}.txt").write_text(f"Text {name}.", encoding="utf-8")
    assert [(item.id, item.text) for item in read_manifest(tmp_path, 100)] == [
        ("a", "Text a."),
        ("b", "Text b."),
    ]


async def _served(limit: AdaptiveLimit, capacity: int, service: float, requests: int) -> float:
    """``requests`` through the limit to a server that serves ``capacity`` at a time, in order."""
    server = asyncio.Semaphore(capacity)

    async def one() -> None:
        started = time.monotonic()
        async with server:
            await asyncio.sleep(service)
        await limit.succeeded(time.monotonic() - started, 100)

    began = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for _ in range(requests):
            await limit.acquire()
            group.create_task(one())
    return time.monotonic() - began


async def test_the_limit_finds_the_capacity_without_being_told() -> None:
    limit = AdaptiveLimit()
    seconds = await _served(limit, capacity=8, service=0.05, requests=400)
    ideal = 400 * 0.05 / 8
    assert 8 <= limit.snapshot.limit <= 16, "busy all the time, with a short queue"
    assert seconds < 1.35 * ideal, f"{seconds:.2f} s against an ideal {ideal:.2f} s"


async def test_told_the_gateways_capacity_the_limit_keeps_it_busy_from_the_start() -> None:
    limit = AdaptiveLimit()
    await limit.follow(8)
    assert limit.snapshot.limit == with_waiting(8) == 10, "its 8 at once and two waiting"
    seconds = await _served(limit, capacity=8, service=0.05, requests=400)
    ideal = 400 * 0.05 / 8
    assert limit.snapshot.limit == 10, "answers do not move a figure the gateway gave"
    assert seconds < 1.1 * ideal, f"{seconds:.2f} s against an ideal {ideal:.2f} s"
    await limit.refused(None)
    assert limit.snapshot.limit == 5, "a refusal still halves it, until the gateway's next figure"
    fixed = AdaptiveLimit(fixed=3)
    await fixed.follow(8)
    assert fixed.snapshot.limit == 3, "-j N stays N"


@pytest.mark.parametrize(
    ("models", "capacity"),
    [
        ({"cosy"}, 6),  # the engine the items name: its healthy instances' limits
        (set(), 8),  # none named (an alias or the default): every engine's
        ({"tts-1"}, 8),
    ],
)
def test_the_gateways_capacity_is_read_from_its_engine_list(models: set[str], capacity: int) -> None:
    listing = {
        "engines": [
            {
                "name": "cosy",
                "instances": [
                    {"limit": 4, "healthy": True},
                    {"limit": 2, "healthy": True},
                    {"limit": 9, "healthy": False},
                ],
            },
            {"name": "kokoro", "instances": [{"limit": 2, "healthy": True}]},
            {"name": "other", "instances": [{"url": "-", "healthy": True}]},  # says no limit
        ]
    }
    assert engines_capacity(listing, models) == capacity
    assert engines_capacity({"detail": "Not Found"}, models) is None, "not a voxserve gateway"
    assert engines_capacity({"engines": []}, models) is None


async def test_a_refusal_halves_the_limit_and_pauses_everyone() -> None:
    limit = AdaptiveLimit(initial=8)
    for _ in range(8):
        await limit.acquire()
    await limit.refused(retry_after=0.3)
    for _ in range(7):
        await limit.failed()
    assert limit.snapshot.limit == 4 and limit.snapshot.in_flight == 0
    started = time.monotonic()
    await limit.acquire()
    assert time.monotonic() - started >= 0.25, "nobody sends before Retry-After has passed"
    fixed = AdaptiveLimit(fixed=3)
    await fixed.acquire()
    await fixed.refused(None)
    assert fixed.snapshot.limit == 3, "-j N stays N"
