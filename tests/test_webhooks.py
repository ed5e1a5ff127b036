"""Job webhooks: a job's end posted, signed, retried with backoff, recorded on the job, SSRF-checked."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import ClientFactory, assert_error, submit, wait_for
from tests.test_security import Deployment, auth
from voxserve.jobs.models import Job
from voxserve.jobs.webhooks import sign, verify
from voxserve.voices.sources import is_public

FAST = {"private": True, "backoff_seconds": 0.05, "attempts": 3, "timeout_seconds": 2, "sweep_seconds": 0.2}


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST, answers the statuses it is given."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, seconds: float = 10) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + seconds
        while len(self.posts) < count:
            assert time.monotonic() < deadline, f"{len(self.posts)} of {count} posts"
            time.sleep(0.02)
        return self.posts


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def delivered(client: TestClient, job_id: str, state: str, seconds: float = 10) -> dict[str, Any]:
    """The job's webhook once it is in ``state``."""
    deadline = time.monotonic() + seconds
    while True:
        webhook = client.get(f"/v1/jobs/{job_id}").json()["webhook"]
        if webhook["state"] == state:
            return dict(webhook)
        assert time.monotonic() < deadline, webhook
        time.sleep(0.02)


def test_a_finished_job_posts_its_view_signed(make_client: ClientFactory, receiver: Receiver) -> None:
    client = make_client(webhooks=FAST)
    job = submit(client, webhook_url=receiver.url)
    assert job["webhook"]["state"] == "waiting" and job["webhook"]["url"] == receiver.url
    wait_for(client, job["id"], "succeeded")
    headers, body = receiver.wait(1)[0]
    event = json.loads(body)
    assert event["type"] == "job.succeeded" and headers["voxserve-event"] == "job.succeeded"
    assert event["data"]["id"] == job["id"] and event["data"]["status"] == "succeeded"
    assert event["data"]["links"]["audio"] == f"/v1/jobs/{job['id']}/audio"
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    assert secret.startswith("whsec_") and verify(secret, body, headers["voxserve-signature"])
    assert not verify(secret, body + b" ", headers["voxserve-signature"]), "a changed body fails"
    assert not verify("whsec_other", body, headers["voxserve-signature"]), "another secret fails"
    stale = sign(secret, body, int(time.time()) - 3600)
    assert not verify(secret, body, stale), "an old signature fails"
    webhook = delivered(client, job["id"], "delivered")
    assert webhook["attempts"] == 1 and webhook["last_status"] == 200 and webhook["delivered_at"]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(make_client: ClientFactory) -> None:
    flaky, down = Receiver([500, 503]), Receiver([500] * 10)
    try:
        client = make_client(webhooks=FAST)
        recovered = submit(client, webhook_url=flaky.url)
        given_up = submit(client, webhook_url=down.url)
        webhook = delivered(client, recovered["id"], "delivered")
        assert webhook["attempts"] == 3 and len(flaky.posts) == 3
        deliveries = [headers["voxserve-delivery"] for headers, _ in flaky.posts]
        assert deliveries == [f"{recovered['id']}.{n}" for n in (1, 2, 3)]
        failed = delivered(client, given_up["id"], "failed")
        assert (
            failed["attempts"] == 3 and failed["last_error"] == "answered HTTP 500" and len(down.posts) == 3
        )
    finally:
        flaky.server.shutdown()
        down.server.shutdown()


def test_a_canceled_queued_job_posts_its_end(make_client: ClientFactory, receiver: Receiver) -> None:
    client = make_client(jobs={"workers": 0}, webhooks=FAST)
    job = submit(client, webhook_url=receiver.url)
    assert client.delete(f"/v1/jobs/{job['id']}").json()["status"] == "canceled"
    _, body = receiver.wait(1)[0]
    assert json.loads(body)["type"] == "job.canceled"


@pytest.mark.parametrize(
    ("url", "settings", "status", "words"),
    [
        ("http://127.0.0.1:9/hook", {}, 403, "resolves to an internal address (127.0.0.1)"),
        ("http://[::1]:9/hook", {}, 403, "internal address"),
        ("http://169.254.169.254/latest", {}, 403, "internal address"),
        ("ftp://example.com/hook", {}, 400, "must be an http or https URL"),
        (
            "http://127.0.0.1:9/hook",
            {"private": True, "hosts": ["hooks.example.com"]},
            403,
            "not on webhooks.hosts",
        ),
        ("not a url at all", {}, 400, "http or https"),
    ],
)
def test_webhook_urls_follow_the_reference_url_rules(
    make_client: ClientFactory, url: str, settings: dict[str, Any], status: int, words: str
) -> None:
    client = make_client(jobs={"workers": 0}, webhooks=settings)
    answer = client.post("/v1/jobs", json={"input": "Hello.", "webhook_url": url})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == "webhook_url" and words in answer.json()["error"]["message"]
    assert client.get("/v1/jobs").json()["data"] == [], "nothing queued"


def test_a_delivery_left_by_a_stopped_process_is_swept_up(
    make_client: ClientFactory, receiver: Receiver
) -> None:
    client = make_client(webhooks=FAST)
    job = submit(client, webhook_url="http://127.0.0.1:9/nobody")
    wait_for(client, job["id"], "succeeded")
    services = client.app.state.services  # type: ignore[attr-defined]

    def left_mid_try(stored: Job) -> bool:
        """What a process that stopped during a try leaves: delivering, its lease run out."""
        stored.webhook = {**(stored.webhook or {}), "url": receiver.url, "state": "delivering", "next_at": 0}
        return True

    delivered(client, job["id"], "pending")
    client.portal.call(services.store.update, job["id"], left_mid_try)  # type: ignore[union-attr]
    receiver.wait(1)
    assert delivered(client, job["id"], "delivered")["last_status"] == 200


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        yield Deployment(stack, tmp_path, webhooks=FAST)


def test_a_keys_default_webhook_and_its_own_secret(keyed: Deployment, receiver: Receiver) -> None:
    d = keyed
    alice, bob = (d.key(name, ["jobs"]) for name in ("alice", "bob"))
    alice_id = alice.split("_")[1] + "_" + alice.split("_")[2]
    changed = d.client.patch(
        f"/v1/admin/keys/{alice_id}", json={"webhook_url": receiver.url}, headers=auth(d.admin)
    )
    assert changed.status_code == 200 and changed.json()["webhook_url"] == receiver.url
    refused = d.client.patch(
        f"/v1/admin/keys/{alice_id}", json={"webhook_url": "gopher://x"}, headers=auth(d.admin)
    )
    assert_error(refused, 400, "invalid_request", "webhook_url", "http or https")
    job = d.client.post("/v1/jobs", json={"input": "Hello there."}, headers=auth(alice)).json()
    assert job["webhook"]["url"] == receiver.url
    headers, body = receiver.wait(1)[0]
    secrets = [
        d.client.get("/v1/webhooks/secret", headers=auth(key)).json()["secret"] for key in (alice, bob)
    ]
    assert secrets[0] != secrets[1], "each key its own secret"
    assert verify(secrets[0], body, headers["voxserve-signature"])
    assert not verify(secrets[1], body, headers["voxserve-signature"])
    assert d.client.post("/v1/jobs", json={"input": "Hi."}, headers=auth(bob)).json()["webhook"] is None


def test_a_receivers_answer_is_not_read(make_client: ClientFactory) -> None:
    """A receiver that announces 4 GB and sends them slowly costs nothing: its status is what counts."""
    answered = threading.Event()

    class Endless(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(4 * 2**30))
            self.end_headers()
            answered.set()
            for _ in range(100):
                self.wfile.write(b"x" * 65536)
                time.sleep(0.05)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = make_client(webhooks=FAST)
        job = submit(client, webhook_url=f"http://user:secret@127.0.0.1:{server.server_address[1]}/hook")
        assert job["webhook"]["url"].endswith(f"user:***@127.0.0.1:{server.server_address[1]}/hook"), (
            "no password"
        )
        webhook = delivered(client, job["id"], "delivered")
        assert webhook["attempts"] == 1 and webhook["last_status"] == 200
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "::127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "ff02::1",
        "100.64.0.1",
    ],
)
def test_internal_addresses_in_any_form_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_are() -> None:
    assert all(
        is_public(ipaddress.ip_address(a)) for a in ("8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808")
    )
