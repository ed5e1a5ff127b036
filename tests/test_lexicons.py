"""Pronunciation lexicons: entries read in every request and job, owned like voices, bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import SPEECH, assert_error, submit, wait_for
from tests.test_security import Deployment, auth
from voxserve.engines.fake import FakeEngine
from voxserve.request import SpeechRequest
from voxserve.voices.lexicons import Entry, Lexicon, rewriter

BRANDS = {
    "name": "brands",
    "entries": [
        {"text": "SQL", "say": "sequel"},
        {"text": "CosyVoice", "say": "cozy voice", "case_sensitive": True},
        {"text": "重庆", "say": "[ch][óng]庆", "language": "zh"},
        {"text": "Dr.", "say": "Doctor"},
    ],
}


def _lexicon(*entries: Entry) -> Lexicon:
    return Lexicon("lx_0000000000000001", "test", entries)


def test_entries_match_whole_words_longest_first_not_inside_marks() -> None:
    read = rewriter(
        (
            _lexicon(
                Entry(text="SQL", say="sequel"),
                Entry(text="SQL Server", say="sequel server"),
                Entry(text="重庆", say="[ch][óng]庆", language="zh"),
                Entry(text="Voxserve", say="[V][AA1][K][S] serve", case_sensitive=True),
            ),
        )
    )
    text, hits = read.apply("MySQL, sql and SQL Server; voxserve or Voxserve [ipa:SQL]", "en", 1000) or (
        "",
        {},
    )
    assert text == "MySQL, sequel and sequel server; voxserve or [V][AA1][K][S] serve [ipa:SQL]"
    assert hits == {"lx_0000000000000001": 3}
    assert read.apply("我去重庆，用SQL。", "zh", 100) == (
        "我去[ch][óng]庆，用sequel。",
        {"lx_0000000000000001": 2},
    )
    assert read.apply("重庆 in an English text", "en", 100) == ("重庆 in an English text", {}), (
        "its language only"
    )
    assert read.apply("SQL " * 10, "en", 50) is None, "past its limit: not made"
    assert read.written("我去[ch][óng]庆，用sequel。") == "我去重庆，用SQL。", "shown as written"


def test_speech_reads_the_keys_default_lexicon_and_says_so(
    fake_client: TestClient, fake_engine: FakeEngine
) -> None:
    made = fake_client.post("/v1/lexicons", json={**BRANDS, "default": True})
    assert made.status_code == 201, made.text
    lexicon = made.json()
    assert lexicon["id"].startswith("lx_") and len(lexicon["entries"]) == 4
    said = fake_client.post(
        SPEECH, json={"input": "Ask Dr. Lee about SQL and CosyVoice.", "response_format": "wav"}
    )
    assert said.status_code == 200
    assert said.headers["x-voxserve-lexicons"] == "brands=3"
    assert fake_engine.calls[-1].text == "Ask Doctor Lee about sequel and cozy voice."
    fake_engine.calls.clear()
    plain = fake_client.post(SPEECH, json={"input": "About SQL.", "lexicons": [], "response_format": "wav"})
    assert "x-voxserve-lexicons" not in plain.headers and fake_engine.calls[-1].text == "About SQL."
    named = fake_client.post(SPEECH, json={"input": "About SQL.", "lexicons": [lexicon["id"]]})
    assert named.headers["x-voxserve-lexicons"] == "brands=1"
    unknown = fake_client.post(SPEECH, json={"input": "About SQL.", "lexicons": ["nope"]})
    assert_error(unknown, 404, "lexicon_not_found", "lexicons", "lexicon 'nope' does not exist")


def test_a_lexicon_is_replaced_listed_and_deleted(fake_client: TestClient, fake_engine: FakeEngine) -> None:
    lexicon = fake_client.post("/v1/lexicons", json={**BRANDS, "default": True}).json()
    changed = {
        "name": "brands",
        "entries": [{"text": "SQL", "say": "structured query language"}],
        "default": True,
    }
    assert fake_client.put(f"/v1/lexicons/{lexicon['id']}", json=changed).status_code == 200
    fake_client.post(SPEECH, json={"input": "About SQL.", "response_format": "wav"})
    assert fake_engine.calls[-1].text == "About structured query language."
    listed = fake_client.get("/v1/lexicons").json()["lexicons"]
    assert [(x["name"], len(x["entries"])) for x in listed] == [("brands", 1)]
    assert fake_client.get("/v1/lexicons/brands").json()["id"] == lexicon["id"]
    assert fake_client.delete(f"/v1/lexicons/{lexicon['id']}").json() == {
        "id": lexicon["id"],
        "deleted": True,
    }
    assert fake_client.get(f"/v1/lexicons/{lexicon['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"name": "x", "entries": []}, 400, "entries", ""),
        ({"name": "x", "entries": [{"text": "a" * 101, "say": "b"}]}, 400, "entries.0.text", ""),
        ({"name": "x", "entries": [{"text": "a", "say": "b" * 401}]}, 400, "entries.0.say", ""),
        ({"name": "x", "entries": [{"text": "a", "say": "b"}] * 2001}, 400, "entries", ""),
        ({"name": "../x", "entries": [{"text": "a", "say": "b"}]}, 400, "name", "not allowed"),
        (
            {"name": "x", "entries": [{"text": "SQL", "say": "a"}, {"text": "sql", "say": "b"}]},
            400,
            "entries.1.text",
            "repeats the written form",
        ),
        (
            {"name": "x", "entries": [{"text": "a", "say": "[pause:99s]"}]},
            400,
            "entries.0.say",
            "longest is 10 s",
        ),
    ],
)
def test_bad_lexicons_are_refused_naming_the_field(
    fake_client: TestClient, body: dict[str, Any], status: int, param: str, words: str
) -> None:
    answer = fake_client.post("/v1/lexicons", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param and words in answer.json()["error"]["message"]


def test_a_lexicon_that_would_flood_the_text_is_refused(fake_client: TestClient) -> None:
    flood = {"name": "flood", "entries": [{"text": "a", "say": "b" * 400}], "default": True}
    assert fake_client.post("/v1/lexicons", json=flood).status_code == 201
    answer = fake_client.post(SPEECH, json={"input": "a " * 200})
    assert_error(answer, 413, "input_too_large", "lexicons", "once its lexicons are read")
    huge = fake_client.post("/v1/jobs", json={"input": "a " * 200_000})
    assert_error(huge, 413, "input_too_large", "lexicons", "over 2000000 characters")


def test_a_job_keeps_the_lexicons_it_was_submitted_with(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    lexicon = client.post("/v1/lexicons", json={**BRANDS, "default": True}).json()
    job = submit(client, input="We use SQL. It works. Then CosyVoice speaks.")
    assert job["lexicons"] == [lexicon["id"]]
    wait_for(client, job["id"], "succeeded")
    segments = client.get(f"/v1/jobs/{job['id']}/captions", params={"format": "json"}).json()["segments"]
    assert [s["text"] for s in segments] == ["We use SQL.", "It works.", "Then CosyVoice speaks."], (
        "as written"
    )


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        yield Deployment(stack, tmp_path)


def test_another_keys_lexicons_do_not_exist(keyed: Deployment) -> None:
    d = keyed
    alice, bob = (auth(d.key(name, ["speech", "voices"])) for name in ("alice", "bob"))
    lexicon = d.client.post("/v1/lexicons", json={**BRANDS, "default": True}, headers=alice).json()
    assert d.client.post("/v1/lexicons", json=BRANDS, headers=bob).status_code == 201, "names are per key"
    for call in (d.client.get, d.client.delete):
        assert call(f"/v1/lexicons/{lexicon['id']}", headers=bob).status_code == 404
    said = d.client.post(SPEECH, json={"input": "SQL.", "lexicons": [lexicon["id"]]}, headers=bob)
    assert_error(said, 404, "lexicon_not_found", "lexicons")
    assert "x-voxserve-lexicons" not in d.client.post(SPEECH, json={"input": "SQL."}, headers=bob).headers
    assert (
        d.client.post(SPEECH, json={"input": "SQL."}, headers=alice).headers["x-voxserve-lexicons"]
        == "brands=1"
    )
    assert [x["owner"] for x in d.client.get("/v1/lexicons", headers=bob).json()["lexicons"]] != [
        lexicon["owner"]
    ]
    refused = d.client.post("/v1/lexicons", json=BRANDS, headers=auth(d.key("talker", ["speech"])))
    assert refused.status_code == 403


def test_hostile_lexicons_are_refused(fake_client: TestClient) -> None:
    ssml = {"name": "x", "entries": [{"text": "a", "say": '<voice name="v">x</voice>'}]}
    assert_error(fake_client.post("/v1/lexicons", json=ssml), 400, "invalid_request", "entries.0.say", "SSML")
    shaped = {"name": "lx_0000000000000000", "entries": [{"text": "a", "say": "b"}]}
    assert_error(fake_client.post("/v1/lexicons", json=shaped), 400, "invalid_request", "name", "lexicon id")
    entry = [{"text": "a", "say": "b"}]
    for number in range(8):
        made = fake_client.post(
            "/v1/lexicons", json={"name": f"d{number}", "entries": entry, "default": True}
        )
        assert made.status_code == 201
    ninth = fake_client.post("/v1/lexicons", json={"name": "d8", "entries": entry, "default": True})
    assert_error(ninth, 400, "invalid_request", "default", "at most 8 default lexicons")


def test_thousands_of_long_entries_are_read_in_milliseconds_not_minutes(fake_client: TestClient) -> None:
    """Entries that made one regular expression's matching hold the interpreter for minutes."""
    for number in range(2):
        entries = [{"text": "a" * 91 + f"z{number}<{i}>", "say": "b"} for i in range(2000)]
        made = fake_client.post("/v1/lexicons", json={"name": f"big{number}", "entries": entries})
        assert made.status_code == 201, made.text
    rewrite = rewriter(tuple(fake_client.app.state.services.pipeline.planner.lexicons.list()))  # type: ignore[attr-defined]
    assert rewrite.apply("a" * 4096, "en", 10_000) == ("a" * 4096, {})
    answer = fake_client.post(SPEECH, json={"input": "a" * 90 + " b.", "lexicons": ["big0", "big1"]})
    assert answer.status_code == 200


def test_a_stored_empty_list_of_lexicons_is_read_back_as_one() -> None:
    """Redis's Lua scripts (cjson) write an empty list back as an empty object."""
    dumped = {**SpeechRequest(input="x", lexicons=[]).dump(), "lexicons": {}}
    assert SpeechRequest.load("x", dumped).lexicons == []
