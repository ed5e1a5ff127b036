"""Schemathesis over the whole OpenAPI document, against a real ``voxserve serve`` process.

Every operation, request bodies included, with generated valid and invalid
input: no answer may be a 5xx, and every answer must match the document
(status, media type, body schema). Bounded: a few dozen examples per
operation, over the fast fake engine.

One check is left out: that every schema-valid request succeeds. Some rules
cannot be said in JSON Schema (text with something to speak, a voice that
exists, audio that decodes); those answers are documented 4xx errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from bench.server import running_server
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

FAKE_ONLY = {
    "VOXSERVE_ENGINES": json.dumps([{"name": "fake", "kind": "fake"}]),
    "VOXSERVE_DEFAULT_ENGINE": "fake",
    "VOXSERVE_MODEL_ALIASES": json.dumps({"tts-1": "fake"}),
    "VOXSERVE_CACHE_MAX_BYTES": "0",
}
EXAMPLES = 30  # per operation and mode


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    log = Path(data_dir) / "server.log"
    with running_server(data_dir, log, FAKE_ONLY) as base_url:
        yield schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_and_every_answer_matches_the_schema(
    api_schema: OpenApiSchema, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def answers_well(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])

        try:
            answers_well()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # no input to get wrong (GET /healthz)
