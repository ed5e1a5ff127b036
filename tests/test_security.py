"""Keys, scopes, quotas, ownership and the browser, over the real app with the fake engine."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.support.api import JOB_TEXT, SPEECH, assert_error, ready_client, wait_for
from tests.support.audio import decode
from tests.support.signals import GOOD
from voxserve.config import Quota, Settings
from voxserve.engines.fake import FakeEngine
from voxserve.security.admin import KeyAdmin
from voxserve.security.clientip import client_address, networks

SAY = {"input": "one two three", "response_format": "wav"}
Token = str


class Deployment:
    """An app with keys on over a data dir (and, given one, a shared Redis), and how to make keys."""

    def __init__(self, stack: ExitStack, tmp_path: Path, **overrides: Any) -> None:
        self.stack = stack
        self.tmp_path = tmp_path
        auth = {"enabled": True, **overrides.pop("auth", {})}
        self.settings = Settings(
            data_dir=tmp_path,
            default_engine="fake",
            auth=auth,
            jobs={"retry_base_seconds": 0.05, **overrides.pop("jobs", {})},
            **overrides,
        )
        self.client = self.replica()
        self.admin = self.key("ops", ["admin"])

    def replica(self) -> TestClient:
        """One more app on the same store: another replica."""
        engine = FakeEngine(name="fake", cloning=True)
        return self.stack.enter_context(
            ready_client(self.settings, {"fake": engine}, raise_server_exceptions=False)
        )

    def key(self, name: str, scopes: list[str], **limits: Any) -> Token:
        services = self.client.app.state.services  # type: ignore[attr-defined]
        admin = KeyAdmin(services.guard.keys, self.settings)
        quota = Quota(**limits) if limits else None
        _, token = self.client.portal.call(admin.create, name, tuple(scopes), None, quota)  # type: ignore[union-attr]
        return str(token)


def auth(token: Token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    with ExitStack() as stack:
        yield lambda **overrides: Deployment(stack, tmp_path, **overrides)


# -- keys and scopes -----------------------------------------------------------------------------


def test_no_key_bad_key_and_both_ways_to_send_one(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    client, token = d.client, d.key("app", ["speech"])
    missing = client.post(SPEECH, json=SAY)
    assert_error(missing, 401, "unauthorized", None, "an API key is required")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_error(
        client.post(SPEECH, json=SAY, headers=auth(token[:-2] + "xx")), 401, "unauthorized", None, "not valid"
    )
    assert_error(client.post(SPEECH, json=SAY, headers=auth("sk-something")), 401, "unauthorized", None)
    assert client.post(SPEECH, json=SAY, headers=auth(token)).status_code == 200
    answer = client.post(SPEECH, json=SAY, headers={"X-API-Key": token})
    assert answer.status_code == 200 and decode(answer.content).duration > 0.5
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", SPEECH, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/v1/jobs", {"content": b"input=x", "headers": {"Content-Type": "text/plain"}}),
        ("POST", "/v1/voices", {"files": {"audio": ("ref.wav", b"not audio", "audio/wav")}}),
        ("POST", "/tts", {"data": {"text": ""}}),
        ("POST", "/api/synthesis", {"json": {"text": 5}}),
        ("PATCH", "/v1/admin/keys/k_x", {"json": []}),
        ("DELETE", "/v1/jobs/j_x", {}),
    ],
    ids=["bad JSON", "wrong type", "bad upload", "empty form", "wrong field", "admin", "delete"],
)
def test_a_caller_without_a_key_is_refused_before_its_body_is_read(
    deploy: Callable[..., Deployment], method: str, path: str, body: dict[str, Any]
) -> None:
    client = deploy().client
    answer = client.request(method, path, **body)
    assert_error(answer, 401, "unauthorized", None, "an API key is required")
    bad_key = client.request(method, path, **{**body, "headers": {**body.get("headers", {}), **auth("sk-x")}})
    assert_error(bad_key, 401, "unauthorized", None, "not valid")


def test_scopes_are_named_when_missing(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    speaker = auth(d.key("speaker", ["speech"]))
    assert_error(
        d.client.post("/v1/jobs", json={"input": JOB_TEXT}, headers=speaker),
        403,
        "insufficient_scope",
        "jobs",
        "lacks the 'jobs' scope (it has speech)",
    )
    assert_error(d.client.get("/v1/admin/keys", headers=speaker), 403, "insufficient_scope", "admin")
    assert_error(d.client.get("/metrics", headers=speaker), 403, "insufficient_scope", "admin")
    assert d.client.get("/metrics", headers=auth(d.admin)).status_code == 200
    assert d.client.get("/v1/models", headers=speaker).status_code == 200  # any key reads the catalog


def test_admin_api_makes_keys_shown_once_and_revokes_them_at_once_on_every_replica(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    other = d.replica()
    boolean = {"name": "x", "limits": {"chars_per_month": True}}
    refused = d.client.post("/v1/admin/keys", json=boolean, headers=auth(d.admin))
    assert_error(refused, 400, "invalid_request", "limits.chars_per_month", "not true or false")
    made = d.client.post("/v1/admin/keys", json={"name": "bot", "scopes": ["speech"]}, headers=auth(d.admin))
    assert made.status_code == 201, made.text
    token, key_id = made.json()["token"], made.json()["id"]
    listed = d.client.get("/v1/admin/keys", headers=auth(d.admin)).json()["keys"]
    assert {k["id"] for k in listed} >= {key_id} and all("hash" not in k and "token" not in k for k in listed)
    for replica in (d.client, other):
        assert replica.post(SPEECH, json=SAY, headers=auth(token)).status_code == 200
    assert d.client.delete(f"/v1/admin/keys/{key_id}", headers=auth(d.admin)).json()["state"] == "revoked"
    for replica in (d.client, other):
        assert_error(
            replica.post(SPEECH, json=SAY, headers=auth(token)), 401, "unauthorized", None, "revoked"
        )
    disabled = d.key("paused", ["speech"])
    paused_id = disabled.split("_")[1] + "_" + disabled.split("_")[2]
    d.client.patch(f"/v1/admin/keys/{paused_id}", json={"disabled": True}, headers=auth(d.admin))
    assert_error(other.post(SPEECH, json=SAY, headers=auth(disabled)), 401, "unauthorized", None, "disabled")
    bad = d.client.post("/v1/admin/keys", json={"name": "x", "scopes": ["root"]}, headers=auth(d.admin))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "scopes.0"


def test_keys_are_stored_hashed_and_never_logged(
    deploy: Callable[..., Deployment], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = deploy()
    token = d.key("app", ["speech"])
    d.client.post(SPEECH, json=SAY, headers=auth(token))
    d.client.post(SPEECH, json=SAY, headers=auth(token + "x"))
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("jobs.db*"))
    secret = token.split("_", 3)[3]  # vx_k_<id>_<secret>: the secret itself may hold "_"
    assert secret.encode() not in stored and token.encode() not in stored
    rows = sqlite3.connect(tmp_path / "jobs.db").execute("SELECT data FROM api_keys").fetchall()
    assert all(len(json.loads(row[0])["hash"]) == 64 for row in rows)
    assert secret not in caplog.text


# -- ownership -----------------------------------------------------------------------------------


def test_another_keys_jobs_and_voices_do_not_exist(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    alice, bob = (
        auth(d.key("alice", ["jobs", "voices", "speech"])),
        auth(d.key("bob", ["jobs", "voices", "speech"])),
    )
    job = d.client.post("/v1/jobs", json={"input": JOB_TEXT, "response_format": "wav"}, headers=alice).json()
    for path in (
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/audio",
        f"/v1/jobs/{job['id']}/events",
        f"/api/task/{job['id']}",
    ):
        answer = d.client.get(path, headers=bob)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "job_not_found", path
    assert d.client.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert d.client.get("/v1/jobs", headers=bob).json()["data"] == []
    assert [j["id"] for j in d.client.get("/v1/jobs", headers=alice).json()["data"]] == [job["id"]]
    assert [j["id"] for j in d.client.get("/v1/jobs", headers=auth(d.admin)).json()["data"]] == [job["id"]]
    # the same idempotency key of two keys names two jobs
    again = {"Idempotency-Key": "one", **bob}
    first = d.client.post("/v1/jobs", json={"input": JOB_TEXT}, headers={"Idempotency-Key": "one", **alice})
    assert (
        d.client.post("/v1/jobs", json={"input": JOB_TEXT}, headers=again).json()["id"] != first.json()["id"]
    )
    # voices: names are per key; bob cannot see, use, fetch or delete alice's
    files = {"audio": ("me.wav", GOOD, "audio/wav")}
    voice = d.client.post("/v1/voices", data={"name": "narrator"}, files=files, headers=alice).json()
    assert d.client.post("/v1/voices", data={"name": "narrator"}, files=files, headers=bob).status_code == 201
    for path in (f"/v1/voices/{voice['id']}", f"/v1/voices/{voice['id']}/audio"):
        assert d.client.get(path, headers=bob).status_code == 404
    assert d.client.delete(f"/v1/voices/{voice['id']}", headers=bob).status_code == 404
    speech = d.client.post(SPEECH, json={**SAY, "voice": voice["id"]}, headers=bob)
    assert speech.status_code == 404 and speech.json()["error"]["code"] == "unknown_voice"
    mine = [
        v["id"] for v in d.client.get("/v1/voices", headers=bob).json()["voices"] if v["kind"] != "builtin"
    ]
    assert voice["id"] not in mine and len(mine) == 1
    assert d.client.post(SPEECH, json={**SAY, "voice": "narrator"}, headers=alice).status_code == 200


def test_a_queued_job_keeps_the_voice_it_named(deploy: Callable[..., Deployment]) -> None:
    """A job names a library voice by name; it is stored by id, so no later voice of that name (another
    key's) can stand in for it."""
    d = deploy(jobs={"workers": 0})
    alice = auth(d.key("alice", ["jobs", "voices"]))
    files = {"audio": ("me.wav", GOOD, "audio/wav")}
    voice = d.client.post("/v1/voices", data={"name": "narrator"}, files=files, headers=alice).json()
    job = d.client.post("/v1/jobs", json={"input": JOB_TEXT, "voice": "narrator"}, headers=alice).json()
    assert job["voice"] == voice["id"] and job["owner"] == voice["owner"]


# -- quotas and rate limits ----------------------------------------------------------------------


def test_requests_per_minute_with_headers_and_nothing_charged_when_refused(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    token = auth(d.key("small", ["speech"], requests_per_minute=3, chars_per_day=40))
    first = d.client.post(SPEECH, json=SAY, headers=token)
    assert first.status_code == 200 and first.headers["x-ratelimit-limit"] == "3"
    assert first.headers["x-ratelimit-remaining"] == "2"
    long = d.client.post(SPEECH, json={**SAY, "input": "word " * 8}, headers=token)  # 40 characters: too many
    assert_error(long, 429, "rate_limited", "chars_per_day", "needs 40 characters; 40 characters per day")
    assert int(long.headers["retry-after"]) > 3600 and long.headers["x-ratelimit-remaining"] == "27"
    assert d.client.post(SPEECH, json=SAY, headers=token).status_code == 200, "the refusal charged nothing"
    assert d.client.post(SPEECH, json=SAY, headers=token).status_code == 200
    refused = d.client.post(SPEECH, json=SAY, headers=token)
    assert_error(refused, 429, "rate_limited", "requests_per_minute", "3 requests per minute is the limit")
    assert refused.headers["x-ratelimit-remaining"] == "0" and 1 <= int(refused.headers["retry-after"]) <= 60
    usage = d.client.get("/v1/usage", headers=token).json()["usage"]
    assert usage["characters"] == 3 * len(SAY["input"]) and usage["requests.200"] == 3
    assert usage["requests.429"] == 2 and usage["audio_seconds"] == pytest.approx(
        3 * 3 * 0.2 + 3 * 0.25, abs=0.05
    )


def test_speech_that_fails_before_any_audio_is_not_charged(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    d.client.app.state.services.pipeline.engines["fake"].fail_on = "broken"  # type: ignore[attr-defined]
    token = auth(d.key("small", ["speech"], chars_per_day=40))
    failed = d.client.post(SPEECH, json={**SAY, "input": "broken words here"}, headers=token)
    assert failed.status_code == 502, failed.text
    for _ in range(100):  # refunded in the background
        if "characters" not in d.client.get("/v1/usage", headers=token).json()["usage"]:
            break
        time.sleep(0.02)
    usage = d.client.get("/v1/usage", headers=token).json()["usage"]
    assert usage.get("characters", 0) == 0 and usage["requests.502"] == 1
    full = d.client.post(SPEECH, json={**SAY, "input": "word " * 7 + "word."}, headers=token)
    assert full.status_code == 200, "all 40 characters of the day remain"


def test_job_size_audio_length_and_streams_are_per_key(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    key = auth(d.key("tight", ["speech", "jobs"], max_job_chars=20, max_audio_seconds=1.0))
    assert_error(
        d.client.post("/v1/jobs", json={"input": JOB_TEXT}, headers=key),
        413,
        "input_too_large",
        "input",
        "this key's limit for a job is 20",
    )
    long = d.client.post(
        SPEECH, json={**SAY, "input": "one two three four five six seven eight"}, headers=key
    )
    assert long.status_code == 413 and long.json()["error"]["code"] == "audio_too_long"


def test_concurrent_streams(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    token = auth(d.key("one-at-a-time", ["speech"], concurrent_streams=1))
    with d.client.stream(
        "POST", SPEECH, json={**SAY, "input": "one two three four five six"}, headers=token
    ) as open_one:
        assert open_one.status_code == 200
        second = d.client.post(SPEECH, json=SAY, headers=token)
        assert_error(second, 429, "rate_limited", "concurrent_streams", "at most 1 at once")
        b"".join(open_one.iter_bytes())
    for _ in range(50):  # the slot comes back as the stream ends
        if d.client.post(SPEECH, json=SAY, headers=token).status_code == 200:
            break
    else:
        raise AssertionError("the stream slot never came back")


@pytest.fixture
def shared_redis() -> Iterator[str]:
    prefix = "voxserve-test-" + __import__("secrets").token_hex(4)
    yield prefix
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(match="{" + prefix + "}*"))
    if keys:
        client.delete(*keys)


def test_two_replicas_on_one_redis_enforce_one_quota_exactly(
    deploy: Callable[..., Deployment], shared_redis: str
) -> None:
    d = deploy(jobs={"queue_url": "redis://127.0.0.1:6379/0", "queue_prefix": shared_redis, "workers": 0})
    other = d.replica()
    token = auth(d.key("shared", ["speech"], requests_per_minute=5))
    answers = [
        (d.client if i % 2 else other).post(SPEECH, json=SAY, headers=token).status_code for i in range(7)
    ]
    assert answers == [200] * 5 + [429] * 2


# -- the browser ---------------------------------------------------------------------------------


def test_foreign_hosts_and_cross_site_posts_are_refused(fake_client: TestClient) -> None:
    """Keys off (one local user): DNS rebinding and CSRF are what a web page could still do."""
    rebound = fake_client.get("/v1/models", headers={"Host": "evil.example"})
    assert_error(rebound, 400, "invalid_host", "Host", "'evil.example' is not served here")
    csrf = fake_client.post("/tts", data={"text": "hello"}, headers={"Origin": "https://evil.example"})
    assert_error(csrf, 403, "forbidden_origin", "Origin", "https://evil.example")
    marked = fake_client.post(SPEECH, json=SAY, headers={"Sec-Fetch-Site": "cross-site"})
    assert marked.status_code == 403
    assert (
        fake_client.post("/tts", data={"text": "hello"}, headers={"Origin": "http://127.0.0.1"}).status_code
        == 200
    )
    assert fake_client.post(SPEECH, json=SAY).status_code == 200, "not a browser: no Origin"
    assert fake_client.get("/v1/models", headers={"Origin": "https://evil.example"}).status_code == 200


def test_allowed_origins_get_cors(tmp_path: Path) -> None:
    auth_settings = {"cors_origins": ["https://app.example"], "allowed_hosts": [".api.example"]}
    settings = Settings(data_dir=tmp_path, default_engine="fake", auth=auth_settings)
    with ready_client(settings, {"fake": FakeEngine()}, base_url="http://tts.api.example") as client:
        preflight = client.options(
            SPEECH, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        post = client.post(SPEECH, json=SAY, headers={"Origin": "https://app.example"})
        assert (
            post.status_code == 200 and post.headers["access-control-allow-origin"] == "https://app.example"
        )
        assert "x-voxserve-engine" in post.headers["access-control-expose-headers"].lower()
        other = client.post(SPEECH, json=SAY, headers={"Origin": "https://other.example"})
        assert other.status_code == 403
        assert client.get("/v1/models", headers={"Host": "127.0.0.1"}).status_code == 400, "not on this list"
        assert client.get("/healthz", headers={"Host": "127.0.0.1"}).status_code == 200, (
            "probes name any host"
        )


def test_docs_are_served_without_a_cdn_and_need_a_key_unless_public(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    assert d.client.get("/docs").status_code == 401 and d.client.get("/openapi.json").status_code == 401
    page = d.client.get("/docs", headers=auth(d.admin))
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert "/docs/assets/redoc.standalone.js" in d.client.get("/redoc", headers=auth(d.admin)).text
    script = d.client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert d.client.get("/openapi.json", headers=auth(d.admin)).json()["info"]["title"] == "voxserve"


def test_public_docs_metrics_and_engines_when_asked(deploy: Callable[..., Deployment]) -> None:
    d = deploy(auth={"public_docs": True, "public_metrics": True, "public_engines": True})
    for path in ("/docs", "/redoc", "/openapi.json", "/metrics", "/v1/engines"):
        assert d.client.get(path).status_code == 200, path
    assert d.client.get("/v1/models").status_code == 401


# -- moderation and addresses --------------------------------------------------------------------


def test_a_blocklisted_text_is_refused_with_the_reason_and_charges_nothing(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# words we do not say\nforbidden word\n/\\bsecret\\s+\\d+\\b/\n", encoding="utf-8")
    d = deploy(moderation={"blocklist": str(blocklist)})
    token = auth(d.key("app", ["speech", "jobs"], chars_per_day=1000))
    refused = d.client.post(SPEECH, json={**SAY, "input": "say the Forbidden Word now"}, headers=token)
    assert_error(refused, 422, "moderated", "input", "'Forbidden Word', which the blocklist refuses")
    job = d.client.post("/v1/jobs", json={"input": "the secret 42 is out"}, headers=token)
    assert_error(job, 422, "moderated", "input", "'secret 42'")
    usage = d.client.get("/v1/usage", headers=token).json()["usage"]
    assert "characters" not in usage


def test_client_addresses_come_from_trusted_proxies_only() -> None:
    trusted = networks(["10.0.0.0/8", "127.0.0.1"])
    forwarded = {"x-forwarded-for": "203.0.113.9, 10.1.2.3"}
    assert client_address("127.0.0.1", forwarded, trusted) == "203.0.113.9"
    assert client_address("198.51.100.7", forwarded, trusted) == "198.51.100.7", "an untrusted peer's header"
    assert client_address("10.0.0.5", {"x-real-ip": "192.0.2.44"}, trusted) == "192.0.2.44"
    assert client_address("10.0.0.5", {"x-forwarded-for": "1.2.3.4, 5.6.7.8"}, trusted) == "5.6.7.8"
    assert client_address("10.0.0.5", {}, networks([])) == "10.0.0.5"


def test_anonymous_clients_are_limited_per_address(fake_settings: Settings) -> None:
    settings = fake_settings.model_copy(
        update={"limits": fake_settings.limits.model_copy(update={"anonymous": Quota(requests_per_minute=2)})}
    )
    with ready_client(settings, {"fake": FakeEngine()}) as client:
        assert [client.post(SPEECH, json=SAY).status_code for _ in range(3)] == [200, 200, 429]


def test_jobs_of_a_key_end_with_its_usage(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    token = auth(d.key("writer", ["jobs"]))
    job = d.client.post("/v1/jobs", json={"input": JOB_TEXT, "response_format": "wav"}, headers=token).json()
    done = wait_for(d.client, job["id"], "succeeded", "failed", headers=token)
    assert done["status"] == "succeeded", done
    for _ in range(50):  # counted as the worker ends the job
        usage = d.client.get("/v1/usage", headers=token).json()["usage"]
        if "audio_seconds" in usage:
            break
    assert usage["characters"] == len(JOB_TEXT)
    assert usage["audio_seconds"] == pytest.approx(done["progress"]["audio_seconds"], abs=0.01)
    assert usage["engine_seconds"] > 0


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, shared_redis: str) -> Any:
    from voxserve.config import Backend
    from voxserve.security.quotas import open_limiter

    backend = Backend("memory") if request.param == "memory" else Backend("redis", "redis://127.0.0.1:6379/0")
    quotas = open_limiter(backend, shared_redis)
    yield quotas
    await quotas.close()


async def test_every_limit_is_charged_at_once_or_not_at_all(limiter: Any) -> None:
    """The one contract of both counters (one process, and Redis for replicas)."""
    from voxserve.errors import RateLimited

    quota = Quota(requests_per_minute=4, chars_per_day=100, concurrent_streams=1)
    first = await limiter.admit("key:a", quota, chars=60, stream=True)
    assert first.headers["X-RateLimit-Limit"] == "4" and first.headers["X-RateLimit-Remaining"] == "3"
    assert 0 < int(first.headers["X-RateLimit-Reset"]) - __import__("time").time() <= 60
    with pytest.raises(RateLimited) as streams:
        await limiter.admit("key:a", quota, chars=10, stream=True)
    assert streams.value.param == "concurrent_streams"
    with pytest.raises(RateLimited) as chars:
        await limiter.admit("key:a", quota, chars=41)
    assert chars.value.param == "chars_per_day" and chars.value.remaining == 40
    await limiter.release(first)
    await limiter.release(first)  # given back once only
    second = await limiter.admit("key:a", quota, chars=40, stream=True)  # nothing the refusals asked was kept
    assert second.headers["X-RateLimit-Remaining"] == "2"
    await limiter.admit("key:b", quota, chars=100)  # another subject counts alone
    third = await limiter.admit("key:a", quota)
    fourth = await limiter.admit("key:a", quota)
    assert (third.headers["X-RateLimit-Remaining"], fourth.headers["X-RateLimit-Remaining"]) == ("1", "0")
    with pytest.raises(RateLimited) as rate:
        await limiter.admit("key:a", quota)
    assert rate.value.param == "requests_per_minute" and 1 <= rate.value.retry_after <= 60
    assert (await limiter.admit("key:c", Quota())).headers == {}, "no limits, nothing counted"


async def test_stream_slots_are_leases_that_lapse_unless_renewed_and_never_go_below_zero(
    limiter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that dies stops renewing: its slots come back within a lease, never an hour later."""
    import asyncio

    from voxserve.errors import RateLimited
    from voxserve.security import quotas

    monkeypatch.setattr(quotas, "STREAM_LEASE_SECONDS", 1)
    quota = Quota(concurrent_streams=2)
    for _ in range(2):
        await limiter.admit("key:s", quota, stream=True)  # held by a replica that then dies
    with pytest.raises(RateLimited):
        await limiter.admit("key:s", quota, stream=True)
    await asyncio.sleep(1.2)
    alive = await limiter.admit("key:s", quota, stream=True)
    for _ in range(4):  # renewed by its replica: outlives its first lease twice over
        await asyncio.sleep(0.5)
        await limiter.renew()
    other = await limiter.admit("key:s", quota, stream=True)
    with pytest.raises(RateLimited):
        await limiter.admit("key:s", quota, stream=True)
    for admitted in (alive, alive, other, other):  # given back late and twice: never below zero
        await limiter.release(admitted)
    await limiter.admit("key:s", quota, stream=True)
    await limiter.admit("key:s", quota, stream=True)
    with pytest.raises(RateLimited):
        await limiter.admit("key:s", quota, stream=True)


@pytest.mark.parametrize("queue", ["sqlite", "redis"])
def test_a_replay_or_a_conflict_is_never_charged(
    deploy: Callable[..., Deployment], shared_redis: str, queue: str
) -> None:
    """Twelve sends of one job (and six at once of another) cost one job each; a 409 costs nothing."""
    from concurrent.futures import ThreadPoolExecutor

    shared = (
        {"queue_url": "redis://127.0.0.1:6379/0", "queue_prefix": shared_redis} if queue == "redis" else {}
    )
    d = deploy(jobs={"workers": 0, **shared})
    token = auth(d.key("writer", ["jobs"], chars_per_day=1000))
    body = {"input": "a" * 99 + ".", "response_format": "wav"}

    def send(key: str, json: dict[str, Any]) -> Any:
        return d.client.post("/v1/jobs", json=json, headers={"Idempotency-Key": key, **token})

    answers = [send("order-1", body) for _ in range(12)]
    assert [a.status_code for a in answers] == [202] * 12
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None] + ["true"] * 11
    conflict = send("order-1", {**body, "input": "b" * 99 + "."})
    assert_error(conflict, 409, "idempotency_conflict", "Idempotency-Key", "different request")
    with ThreadPoolExecutor(6) as pool:
        raced = list(pool.map(lambda _: send("order-2", {**body, "speed": 1.5}), range(6)))
    assert [a.status_code for a in raced] == [202] * 6 and len({a.json()["id"] for a in raced}) == 1
    for _ in range(100):  # a race's losers are refunded in the background
        usage = d.client.get("/v1/usage", headers=token).json()["usage"]
        if usage["characters"] == 200:
            break
        time.sleep(0.02)
    assert usage["characters"] == 200
    assert send("order-3", {**body, "input": "c" * 799 + "."}).status_code == 202, "800 of 1000 remained"
    assert_error(send("order-4", body), 429, "rate_limited", "chars_per_day", "0 remain")


def test_usage_is_written_once_however_the_flushes_meet(deploy: Callable[..., Deployment]) -> None:
    """The timer's flush and /v1/usage's at once, and a batch sent again after a lost answer (SQLite)."""
    import asyncio

    client = deploy().client
    guard = client.app.state.services.guard  # type: ignore[attr-defined]

    async def flushed() -> dict[str, float]:
        await guard.record_key("k_flush", {"characters": 7})
        await asyncio.gather(guard.flush_usage(), guard.flush_usage())
        await guard.keys.add_usage("k_flush", {"characters": 5}, "batch-1")
        await guard.keys.add_usage("k_flush", {"characters": 5}, "batch-1")
        return dict(await guard.keys.usage("k_flush"))

    assert client.portal.call(flushed) == {"characters": 12}  # type: ignore[union-attr]


def test_a_text_stream_is_one_request_and_one_stream_charged_its_characters(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    url = "ws://127.0.0.1/v1/audio/speech/stream"
    jobs_only = auth(d.key("jobs", ["jobs"]))
    with (
        d.client.websocket_connect(url, headers=jobs_only) as socket,
        pytest.raises(WebSocketDisconnect) as no,
    ):
        socket.receive_json()
    assert no.value.code == 4403
    token = auth(d.key("agent", ["speech"], requests_per_minute=2, concurrent_streams=1))
    with d.client.websocket_connect(url, headers=token) as socket:
        socket.send_json({"type": "text", "text": "One two. Three four. Five six. Seven"})
        socket.send_json({"type": "end"})
        with (
            d.client.websocket_connect(url, headers=token) as second,
            pytest.raises(WebSocketDisconnect) as busy,
        ):
            second.receive_json()
        assert busy.value.code == 4429 and "concurrent_streams" in busy.value.reason
        done = None
        while done is None:
            message = socket.receive()
            if message.get("text") and json.loads(message["text"])["type"] == "done":
                done = json.loads(message["text"])
    assert done["usage"]["characters"] == len("One two.Three four.Five six.Seven")
    deadline = time.monotonic() + 5
    while "audio_seconds" not in (usage := d.client.get("/v1/usage", headers=token).json()["usage"]):
        assert time.monotonic() < deadline, usage
        time.sleep(0.05)
    assert usage["characters"] == done["usage"]["characters"], "four sentences, four charges"
    assert usage["audio_seconds"] == pytest.approx(done["usage"]["audio_seconds"], abs=0.01)
    again = d.client.post(SPEECH, json=SAY, headers=token)
    assert again.status_code == 200, "the stream counted as one request of the two a minute"
