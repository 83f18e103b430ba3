"""Property-based tests of the running API from its own ``/openapi.json`` (schemathesis):
valid and invalid requests to every operation, bounded in number. No response is a 500, every
response fits the document (status, content type, schema), and every error is in the pack's
structured format with the request's correlation id."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration import test_api_support as support
from tests.integration.test_api_support import Stack

stack = support.stack  # the module-scoped stack fixture, one per test module

EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_server_errors_and_every_error_structured(stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.api.url}/openapi.json")
    headers = {**stack.tenants["a"].headers, "X-Request-Timeout": "10"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/chat/completions",
        "POST /v1/workflows/submit",
        "GET /v1/runs/{correlation_id}",
    }
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=stack.api.url, headers=headers, timeout=30)
                case.validate_response(response, checks=CHECKS)
                assert response.status_code != 500, response.text
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert set(error) - {"details"} == {
                        "code",
                        "message",
                        "retryable",
                        "correlation_id",
                    }
                    # Only validation errors name fields one by one (dataset items, results).
                    assert "details" not in error or (
                        response.status_code == 422 and isinstance(error["details"], list)
                    )
                    assert [error["correlation_id"]] == response.headers["x-correlation-id"]
                    assert "Traceback" not in response.text

            try:
                exercise()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no input to get wrong (GET /healthz)
    assert calls >= len(operations) * 2
