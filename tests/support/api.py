"""Talking to the API in tests: its error shape, and jobs submitted and waited for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from voxserve.api import create_app
from voxserve.config import Settings
from voxserve.engines import Engine

SPEECH = "/v1/audio/speech"
#: Where test clients say they are (a loopback name: the Host check answers it by default).
LOCAL = "http://127.0.0.1"
JOB_TEXT = "One two three. Four five six. Seven eight nine."
ClientFactory = Callable[..., TestClient]


@contextmanager
def ready_client(
    settings: Settings,
    engines: Mapping[str, Engine] | None = None,
    *,
    raise_server_exceptions: bool = True,
    base_url: str = LOCAL,
    warm: bool = True,
) -> Iterator[TestClient]:
    """The real app (over ``engines``, or the configured ones), once ``/readyz`` says it is ready
    and (``warm``) every engine, those on servers too, says it is ready to serve."""
    app = create_app(settings, engines=engines)
    with TestClient(app, base_url=base_url, raise_server_exceptions=raise_server_exceptions) as client:
        deadline = time.monotonic() + 30
        while not _ready(client.get("/readyz"), warm):
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.02)
        yield client


def _ready(answer: Any, warm: bool) -> bool:
    if answer.status_code != 200:
        return False
    return not warm or all(engine["status"] == "ready" for engine in answer.json()["engines"].values())


def assert_error(response: object, status: int, code: str, param: str | None, text: str = "") -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == code, error
    assert error["param"] == param
    assert text in error["message"], error["message"]


def submit(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"input": JOB_TEXT, "response_format": "wav", **body})
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for(
    client: TestClient,
    job_id: str,
    *statuses: str,
    timeout: float = 20,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses:
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
