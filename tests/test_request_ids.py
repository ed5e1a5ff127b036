"""One id per request: the client's when usable, else ours; on every answer and in the log line."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.support.api import SPEECH


def test_every_answer_carries_an_id_and_a_usable_one_is_kept(
    fake_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    ours = fake_client.get("/healthz").headers["x-request-id"]
    assert len(ours) == 16 and ours != fake_client.get("/healthz").headers["x-request-id"]
    refused = fake_client.post(SPEECH, json={"input": "hi", "voice": "nobody"})
    assert refused.status_code == 404 and len(refused.headers["x-request-id"]) == 16, "errors too"
    with caplog.at_level(logging.INFO, logger="voxserve"):
        given = fake_client.post(SPEECH, json={"input": "hello"}, headers={"X-Request-ID": "gw-42:a.b_c"})
    assert given.headers["x-request-id"] == "gw-42:a.b_c"
    assert any("request gw-42:a.b_c " in record.getMessage() for record in caplog.records), "the log names it"


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "new\\nline", "<script>"])
def test_an_unusable_id_is_replaced(fake_client: TestClient, bad: str) -> None:
    answer = fake_client.get("/healthz", headers={"X-Request-ID": bad})
    assert answer.headers["x-request-id"] != bad and len(answer.headers["x-request-id"]) == 16
