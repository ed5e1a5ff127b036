"""The job API over the real app and pipeline, with the fake engine and the SQLite store."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import JOB_TEXT as TEXT
from tests.support.api import ClientFactory, submit, wait_for
from tests.support.audio import decode
from voxserve.engines.fake import FakeEngine
from voxserve.jobs.janitor import sweep
from voxserve.services import Services


def services(client: TestClient) -> Services:
    value: Services = client.app.state.services  # type: ignore[attr-defined]
    return value


def test_submit_poll_download(make_client: ClientFactory) -> None:
    client = make_client()
    job = submit(client, name="chapter-1", metadata={"book": "b1"})
    assert job["status"] == "queued" and job["name"] == "chapter-1" and job["metadata"] == {"book": "b1"}
    assert job["progress"]["segments_total"] is None and job["progress"]["chars_total"] is None, "not planned"
    done = wait_for(client, job["id"], "succeeded")
    assert done["progress"] == {
        "segments_done": 3,
        "segments_total": 3,
        "audio_seconds": pytest.approx(2.55),
        "chars_done": len(TEXT),
        "chars_total": len(TEXT),
    }
    assert done["attempts"] == 1 and done["error"] is None
    response = client.get(done["links"]["audio"])
    assert response.headers["content-disposition"] == 'attachment; filename="chapter-1.wav"'
    assert decode(response.content).duration == pytest.approx(9 * 0.2 + 3 * 0.25, abs=0.01)
    assert not services(client).files.pcm(job["id"]).exists(), "the PCM is removed once encoded"
    [worker] = client.get("/readyz").json()["workers"]
    assert (worker["succeeded"], worker["failed"], worker["running"]) == (1, 0, 0) and worker["healthy"]


def test_range_requests_on_the_finished_file(make_client: ClientFactory) -> None:
    client = make_client()
    job = wait_for(client, submit(client)["id"], "succeeded")
    whole = client.get(job["links"]["audio"]).content
    part = client.get(job["links"]["audio"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]


def test_idempotency_key(make_client: ClientFactory) -> None:
    client = make_client(jobs={"workers": 0})
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/jobs", json={"input": TEXT}, headers=headers)
    again = client.post("/v1/jobs", json={"input": TEXT}, headers=headers)
    assert first.json()["id"] == again.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/jobs", json={"input": "Something else."}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert len(client.get("/v1/jobs").json()["data"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"input": ""}, 400, "invalid_request", "input"),
        ({"input": "x" * 2001}, 413, "input_too_large", "input"),
        ({"input": "hi", "voice": "nobody"}, 404, "unknown_voice", "voice"),
        ({"input": "hi", "name": "../../etc/passwd"}, 400, "invalid_request", "name"),
        ({"input": "hi", "task_id": "a/b"}, 400, "invalid_request", "name"),
        ({"input": "hi", "priority": 10}, 400, "invalid_request", "priority"),
        ({"input": "hi", "run_at": "tomorrow"}, 400, "invalid_request", "run_at"),
        ({"input": "hi", "metadata": {"x": "y" * 5000}}, 400, "invalid_request", "metadata"),
        ({"input": "hi", "stream_format": "sse"}, 400, "invalid_request", "stream_format"),
    ],
)
def test_bad_jobs_are_refused_before_anything_is_queued(
    make_client: ClientFactory, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    client = make_client(jobs={"workers": 0, "max_chars": 2000})
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["param"] == param
    assert client.get("/v1/jobs").json()["data"] == []


def test_wrong_media_type_and_unknown_job(make_client: ClientFactory) -> None:
    client = make_client(jobs={"workers": 0})
    response = client.post("/v1/jobs", content=b"input=hi", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    paths = ["/v1/jobs/job_nope", "/v1/jobs/job_nope/audio", "/v1/jobs/job_nope/events"]
    for method, path in [("DELETE", paths[0])] + [("GET", p) for p in paths]:
        response = client.request(method, path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "job_not_found"


def test_disk_limit_refuses_new_jobs(make_client: ClientFactory) -> None:
    client = make_client(jobs={"workers": 0, "disk_limit_bytes": 0})
    response = client.post("/v1/jobs", json={"input": TEXT})
    assert response.status_code == 507 and "limit of 0" in response.json()["error"]["message"]


def test_priority_then_fifo(make_client: ClientFactory) -> None:
    client = make_client(jobs={"workers": 0})
    ids = [submit(client, priority=p)["id"] for p in (1, 5, 1, 9)]

    async def claim_all() -> list[str]:
        store = services(client).store
        return [job.id for _ in ids if (job := await store.claim("test", 30)) is not None]

    order = client.portal.call(claim_all)  # type: ignore[union-attr]
    assert order == [ids[3], ids[1], ids[0], ids[2]]


def test_delayed_job_waits(make_client: ClientFactory) -> None:
    client = make_client()
    job = submit(client, run_at=time.time() + 1.0)
    time.sleep(0.5)
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    wait_for(client, job["id"], "succeeded")


def test_cancel_queued_job(make_client: ClientFactory) -> None:
    client = make_client(jobs={"workers": 0})
    job = submit(client)
    canceled = client.delete(f"/v1/jobs/{job['id']}").json()
    assert canceled["status"] == "canceled"
    assert client.get(f"/v1/jobs/{job['id']}/audio").status_code == 409


def test_cancel_running_job_stops_at_the_next_segment(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.delay = 0.2
    client = make_client()
    job = submit(client, input=" ".join(f"Sentence {i}." for i in range(20)))
    running = wait_for(client, job["id"], "running")
    assert running["status"] == "running"
    time.sleep(0.3)
    assert client.delete(f"/v1/jobs/{job['id']}").json()["cancel_requested"] is True
    ended = wait_for(client, job["id"], "canceled")
    assert ended["progress"]["segments_done"] < 20 and len(fake_engine.calls) < 20
    assert not (services(client).files.root / job["id"]).exists()


def test_retryable_failure_is_retried_then_succeeds(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.fail_on, fake_engine.fail_times = "Four", 1
    client = make_client()
    done = wait_for(client, submit(client)["id"], "succeeded", "failed")
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert [c.text for c in fake_engine.calls] == [
        "One two three.",
        "Four five six.",
        "Four five six.",
        "Seven eight nine.",
    ]
    assert decode(client.get(done["links"]["audio"]).content).duration == pytest.approx(2.55, abs=0.01)


def test_retries_end_in_failure_with_the_engine_message(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.fail_on = "Four"
    client = make_client()
    done = wait_for(client, submit(client, max_attempts=2)["id"], "failed", "succeeded")
    assert done["attempts"] == 2
    assert done["error"] == {
        "code": "engine_error",
        "message": "engine 'fake' failed: told to fail on 'Four'",
    }


def test_permanent_failure_fails_at_once(make_client: ClientFactory, fake_engine: FakeEngine) -> None:
    fake_engine.reject_on = "Four"
    client = make_client()
    done = wait_for(client, submit(client)["id"], "failed", "succeeded")
    assert done["attempts"] == 1 and done["error"]["code"] == "engine_rejected"


def test_list_filter_and_pages(make_client: ClientFactory) -> None:
    client = make_client(jobs={"workers": 0})
    ids = [submit(client)["id"] for _ in range(5)]
    client.delete(f"/v1/jobs/{ids[0]}")
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["data"]] == ids[:2:-1][:2] and page["has_more"]
    rest = client.get("/v1/jobs", params={"limit": 10, "before": page["next"]}).json()
    assert [j["id"] for j in rest["data"]] == ids[2::-1] and not rest["has_more"]
    assert [j["id"] for j in client.get("/v1/jobs", params={"status": "canceled"}).json()["data"]] == [ids[0]]
    assert client.get("/v1/jobs", params={"status": "lost"}).status_code == 400


def test_events_arrive_in_order_and_late_listeners_get_the_state(
    make_client: ClientFactory, fake_engine: FakeEngine
) -> None:
    fake_engine.delay = 0.05
    client = make_client()
    job = submit(client)
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "succeeded" and statuses == sorted(
        statuses, key=["queued", "running", "succeeded"].index
    )
    done = [e["progress"]["segments_done"] for e in events]
    assert done == sorted(done) and done[-1] == 3
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as late:
        lines = [line for line in late.iter_lines() if line]
    assert lines[0] == "event: succeeded" and json.loads(lines[1][6:])["status"] == "succeeded"


def test_websocket_events(make_client: ClientFactory, fake_engine: FakeEngine) -> None:
    fake_engine.delay = 0.05
    client = make_client()
    job = submit(client)
    messages: list[dict[str, Any]] = []
    with client.websocket_connect(f"ws://127.0.0.1/v1/jobs/{job['id']}/ws") as socket:
        while not messages or messages[-1]["status"] != "succeeded":
            messages.append(socket.receive_json())
    progress = [m["progress"]["segments_done"] for m in messages]
    assert progress == sorted(progress) and progress[-1] == 3
    with (
        client.websocket_connect("ws://127.0.0.1/v1/jobs/job_nope/ws") as socket,
        pytest.raises(Exception) as closed,
    ):
        socket.receive_json()
    assert getattr(closed.value, "code", None) == 4404


def test_listen_while_running(make_client: ClientFactory, fake_engine: FakeEngine) -> None:
    fake_engine.delay = 0.15
    client = make_client()
    job = submit(client, input=" ".join(f"Part {i} of the book." for i in range(12)))
    wait_for(client, job["id"], "running")
    chunks, statuses = [], []
    with client.stream("GET", f"/v1/jobs/{job['id']}/audio") as response:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            statuses.append(client.get(f"/v1/jobs/{job['id']}").json()["status"])
    assert statuses[0] == "running", "audio flowed while the job was still running"
    assert len(chunks) > 3
    streamed = decode(b"".join(chunks))
    final = decode(client.get(f"/v1/jobs/{job['id']}/audio").content)
    assert streamed.duration == pytest.approx(final.duration, abs=0.01)
    assert streamed.duration == pytest.approx(12 * (5 * 0.2 + 0.25), abs=0.02)


def test_seed_task_api(make_client: ClientFactory) -> None:
    client = make_client()
    created = client.post("/api/synthesis", json={"text": TEXT, "outputName": "greeting"}).json()
    assert created["status"] == "pending" and created["taskId"].startswith("task_")
    stamp = int(created["taskId"].split("_")[1])
    assert abs(stamp / 1000 - time.time()) < 60
    deadline = time.monotonic() + 20
    while (task := client.get(f"/api/task/{created['taskId']}").json())["status"] != "completed":
        assert task["status"] in ("pending", "processing") and time.monotonic() < deadline
        time.sleep(0.02)
    assert task["outputPath"] == f"jobs/{created['taskId']}/greeting.wav" and task["error"] is None
    audio = client.get(task["outputUrl"])
    assert audio.headers["content-disposition"] == 'attachment; filename="greeting.wav"'
    assert decode(audio.content).duration == pytest.approx(2.55, abs=0.01)
    cloning = client.post("/api/synthesis", json={"text": TEXT, "audio": "/refs/voice.wav"})
    assert cloning.status_code == 422 and cloning.json()["error"]["code"] == "capability_missing"
    assert client.get("/api/task/task_0_nope").status_code == 404


def test_retention_janitor(make_client: ClientFactory) -> None:
    client = make_client()
    job = wait_for(client, submit(client)["id"], "succeeded")
    files = services(client).files
    assert (files.root / job["id"]).exists()

    async def sweep_now(retention: float) -> list[str]:
        return await sweep(services(client).store, files, retention)

    assert client.portal.call(sweep_now, 3600) == []  # type: ignore[union-attr]
    assert client.portal.call(sweep_now, 0) == [job["id"]]  # type: ignore[union-attr]
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert not (files.root / job["id"]).exists()
