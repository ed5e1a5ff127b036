"""Schemathesis over the whole OpenAPI document, against a real ``voxserve serve`` process.

Every operation, request bodies included, with generated valid and invalid
input: no answer may be a 5xx, and every answer must match the document
(status, media type, body schema). Bounded: a few dozen examples per
operation, over the fast fake engine. Twice: as the embedded default (no
keys, valid and invalid input), and with keys on, sending an admin key
(every route open to it, valid input).

One check is left out: that every schema-valid request succeeds. Some rules
cannot be said in JSON Schema (text with something to speak, a voice that
exists, audio that decodes); those answers are documented 4xx errors.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import schemathesis
from harness.server import VOXSERVE, start_server
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

FAKE_ONLY = {
    "VOXSERVE_ENGINES": json.dumps([{"name": "fake", "kind": "fake"}]),
    "VOXSERVE_EMBEDDED": "false",
    "VOXSERVE_DEFAULT_ENGINE": "fake",
    "VOXSERVE_MODEL_ALIASES": json.dumps({"tts-1": "fake"}),
    "VOXSERVE_CACHE_MAX_BYTES": "0",
}
EXAMPLES = 10  # per operation, server and mode


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two servers: keys off, and keys on with an admin key made by ``voxserve keys create``."""
    open_dir, keyed_dir = tmp_path_factory.mktemp("fuzz"), tmp_path_factory.mktemp("fuzz-keys")
    keyed_env = {**FAKE_ONLY, "VOXSERVE_AUTH__ENABLED": "true"}
    create = [str(VOXSERVE), "keys", "create", "fuzz", "--scope", "admin", "--data-dir", str(keyed_dir)]
    made = subprocess.run(create, capture_output=True, text=True, check=True, env={**os.environ, **keyed_env})
    token = made.stdout.strip()
    logs = [open_dir / "server.log", keyed_dir / "server.log"]
    with ThreadPoolExecutor(2) as starting:  # both at once: each takes seconds to be ready
        servers = list(starting.map(start_server, [open_dir, keyed_dir], logs, [FAKE_ONLY, keyed_env]))
    open_url, keyed_url = (server.url for server in servers)
    try:
        yield {
            "open": schemathesis.openapi.from_url(f"{open_url}/openapi.json"),
            "keyed": schemathesis.openapi.from_url(
                f"{keyed_url}/openapi.json", headers={"Authorization": f"Bearer {token}"}
            ),
            "token": token,
        }
    finally:
        for server in servers:
            server.stop()
    for log in logs:
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.parametrize(
    ("server", "mode"),
    [
        ("open", GenerationMode.POSITIVE),
        ("open", GenerationMode.NEGATIVE),
        ("keyed", GenerationMode.POSITIVE),
    ],
)
def test_no_server_error_and_every_answer_matches_the_schema(
    api_schema: dict[str, Any], server: str, mode: GenerationMode
) -> None:
    schema: OpenApiSchema = api_schema[server]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    headers = {"Authorization": f"Bearer {api_schema['token']}"} if server == "keyed" else {}
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def answers_well(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(timeout=30, headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            answers_well()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # no input to get wrong (GET /healthz)
