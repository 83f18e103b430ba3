"""The API's contracts: the OpenAPI document (errors and auth on every operation), responses
and stream chunks that the official ``openai`` types accept, commands that fit their Avro
schema, and docs/API.md naming every error code the API can return."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from api.chat_mapping import command_payload, completion_of, routed_command
from api.chat_schema import ChatCompletionRequest
from api.errors import HttpErrorCode
from api.feed import CLOSE_CODES
from api.settings import ApiSettings
from api.sse import sse_chunks
from schemas import default_catalog
from streams.envelope import WriterIdentity, envelope_json, new_message
from streams.errors import ErrorCode
from streams.serde import AvroSerde, SingleObjectFraming
from streams.settings import Settings
from tests.factories import sample_envelope

REPO = Path(__file__).resolve().parents[2]
SERDE = AvroSerde(default_catalog(), SingleObjectFraming(default_catalog()))
RICH_REQUEST = {
    "model": "gpt-4.1-mini",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}], "name": "ann"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "21C"},
    ],
    "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "w"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
    "stop": ["\n"],
    "max_tokens": 64,
    "temperature": 0.5,
    "top_p": 0.9,
    "user": "u-1",
    "metadata": {"team": "x"},
    "mode": "rag",
    "rag": {"collection": "kb", "filters": {"lang": "en"}},
    "budget": {"max_tokens": 1000, "max_cost_usd": 0.01},
}


def completed_event() -> dict[str, Any]:
    envelope = sample_envelope(default_catalog().latest("llm.request.completed"), "req_1")
    event = envelope_json(envelope)
    event["payload"].update(
        output_text="hello",
        finish_reason="stop",
        tool_calls_json=json.dumps(
            [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]
        ),
    )
    return event


def test_every_operation_documents_structured_errors_and_bearer_auth() -> None:
    app = create_app(ApiSettings(streams=Settings()))
    document = app.openapi()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    error_schema = {"$ref": "#/components/schemas/ErrorBody"}
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == {
        "POST /v1/chat/completions",
        "POST /v1/workflows/submit",
        "POST /v1/collections/{collection}/documents",
        "GET /v1/collections/{collection}/documents",
        "DELETE /v1/collections/{collection}/documents/{document_id}",
        "GET /v1/runs",
        "GET /v1/runs/{correlation_id}",
        "POST /v1/runs/{correlation_id}/scores",
        "GET /v1/alerts",
        "POST /v1/datasets/{dataset}/versions",
        "GET /v1/datasets",
        "GET /v1/datasets/{dataset}",
        "GET /v1/datasets/{dataset}/versions/{version}/items",
        "POST /v1/eval-runs",
        "GET /v1/eval-runs",
        "GET /v1/eval-runs/{eval_run_id}",
        "POST /v1/eval-runs/{eval_run_id}/results",
        "POST /v1/eval-runs/{eval_run_id}/complete",
        "GET /v1/eval-runs/{baseline}/compare/{candidate}",
        *(
            f"GET /v1/analytics/{name}"
            for name in ("latency", "errors", "cache", "cost", "guardrails")
        ),
        "POST /v1/admin/keys",
        "GET /v1/admin/keys",
        "DELETE /v1/admin/keys/{key_id}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }
    for name, operation in operations.items():
        if name.startswith(("POST /v1", "GET /v1", "DELETE /v1")):
            assert operation["security"] == [{"HTTPBearer": []}], name
            for status in ("default", "401", "422"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == error_schema, (name, status)


def test_responses_and_chunks_parse_as_the_openai_types() -> None:
    completion = ChatCompletion.model_validate(completion_of(completed_event()).model_dump())
    assert completion.choices[0].message.tool_calls[0].function.name == "w"  # type: ignore[index]

    async def events() -> AsyncIterator[dict[str, Any]]:
        yield completed_event()

    async def ended(_: Any) -> None:
        return None

    async def chunks() -> list[str]:
        return [
            line
            async for line in sse_chunks(
                events(),
                correlation_id="req_1",
                created=1,
                model="auto",
                include_usage=True,
                on_terminal=ended,
            )
        ]

    lines = asyncio.run(chunks())
    for line in lines[:-1]:
        ChatCompletionChunk.model_validate_json(line.removeprefix("data: "))
    assert lines[-1] == "data: [DONE]\n\n"


def test_commands_fit_their_avro_schemas() -> None:
    request = ChatCompletionRequest.model_validate(RICH_REQUEST)
    payload = command_payload(
        request, deadline=datetime.now(UTC), idempotency_key="k", bypass_cache=True
    )
    writer = WriterIdentity("api", 5, "dev")
    message_type, command, _ = routed_command(request, payload)
    assert message_type == "rag.answer.requested"
    rag = new_message(message_type, command, correlation_id="c", tenant_id="t", writer=writer)
    asked = SERDE.decode(SERDE.encode(rag)).payload
    assert (asked["collection"], asked["top_k"], asked["filters"]) == ("kb", 5, {"lang": "en"})
    chat = new_message(
        "llm.chat.requested", payload, correlation_id="c", tenant_id="t", writer=writer
    )
    decoded = SERDE.decode(SERDE.encode(chat)).payload
    assert decoded["messages"][1]["content"] == "weather?"
    assert json.loads(decoded["messages"][2]["tool_calls_json"])[0]["id"] == "c1"
    assert json.loads(decoded["response_format_json"])["json_schema"]["schema"] == {}
    assert decoded["metadata"] == {"team": "x", "user": "u-1"} and decoded["cache"] == "bypass"
    workflow = {
        "workflow": "w",
        "input_json": "{}",
        "idempotency_key": None,
        "deadline": None,
        "metadata": {},
    }
    message = new_message(
        "workflow.run.requested", workflow, correlation_id="c", tenant_id="t", writer=writer
    )
    assert SERDE.decode(SERDE.encode(message)).payload["workflow"] == "w"


def test_docs_name_every_error_code_and_close_code() -> None:
    page = (REPO / "docs" / "API.md").read_text()
    for code in [*ErrorCode, *HttpErrorCode]:
        assert f"`{code.value}`" in page, code
    for close in CLOSE_CODES.values():
        assert f"`{close}`" in page, close


def test_without_an_event_bus_chat_answers_503_and_the_feed_closes_with_try_again_later() -> None:
    app = create_app(ApiSettings(streams=Settings(), auth_mode="dev"))
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app) as client:
        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 503
        assert answer.headers["x-should-retry"] == "true"
        error = answer.json()["error"]
        assert (error["code"], error["retryable"]) == ("DEPENDENCY_UNAVAILABLE", True)
        assert "KAFKA_BOOTSTRAP_SERVERS" in error["message"]
        with client.websocket_connect("/v1/ws") as websocket:
            try:
                websocket.receive_text()
            except WebSocketDisconnect as closed:
                assert closed.code == CLOSE_CODES["unavailable"]
            else:
                raise AssertionError("the feed should close without an event bus")


@pytest.mark.parametrize(
    ("host", "key", "status"),
    [
        ("127.0.0.1", "local-dev", 503),  # past auth: only the missing event bus stops it
        ("::1", "local-dev", 503),
        ("127.0.0.1", "local-dev-typo", 401),
        ("127.0.0.1", None, 401),
        ("0.0.0.0", "local-dev", 401),  # noqa: S104 - a non-loopback address never admits it
    ],
)
def test_the_local_dev_key_opens_only_a_loopback_api_with_no_keys_configured(
    host: str, key: str | None, status: int, tmp_path: Path
) -> None:
    config = tmp_path / "api.yaml"
    config.write_text("auth:\n  keys: []\n")
    app = create_app(ApiSettings(streams=Settings(), host=host, config_path=config))
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with TestClient(app) as client:
        answer = client.post("/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == status, answer.text
