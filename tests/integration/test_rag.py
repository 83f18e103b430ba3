"""Layer 3 end to end through the API on the real broker, chDB and the real embedding model:
documents are ingested, chunked, embedded and projected; ``mode: rag`` retrieves them, asks
layer 1 (an OpenAI-compatible upstream on loopback) with numbered sources, and answers with
checked citations and a grounding score. Updates and deletes take effect, re-ingesting the
same text changes nothing, tenants never see each other's documents, and a vector path that
fails falls back to keywords and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.llm_servers import OpenAIFake
from tests.integration import test_api_support as support
from tests.integration.foundation_setup import ENV, PRIMARY_KEY, write_config
from tests.integration.processes import REPO, start_processor
from tests.integration.test_api_support import Stack
from tests.integration.test_projections_support import run_cli, wait_until

INTELLIGENCE = "processors.intelligence.processor:PROCESSOR"
ANSWERED: list[str] = []  # every mode rag run this module's tests were answered
WARRANTY = (
    "# Warranty\n\nEvery Acme kettle carries a two-year warranty covering parts and labour. "
    "The warranty starts on the day of purchase.\n\n# Returns\n\n"
    "Unused kettles can be returned within 30 days for a full refund."
)
DESCALING = "Descale the kettle every month with white vinegar to keep the element efficient."
# The upstream answers "<voice>: <last message>"; the trailing question is not a claim.
FAITHFUL = "Acme kettles have a two-year warranty covering parts and labour [1]. Asked"
INVENTED = "Acme kettles have a 5-year warranty [1]. Shipping is free on every order. Asked"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIFake]:
    with OpenAIFake(api_key=PRIMARY_KEY, voice=FAITHFUL) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="module")
def stack(
    bootstrap: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIFake,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("rag")
    configs = write_config(workdir / "foundation", upstream.base_url, upstream.base_url)
    with support.running_stack(
        bootstrap, redis_url, workdir, foundation_configs=configs, env=ENV
    ) as running:
        running.processes.append(_intelligence(running, workdir / "intelligence.yaml", ""))
        yield running


def _intelligence(stack: Stack, config: Path, settings: str) -> Any:
    config.write_text(settings)
    return start_processor(
        INTELLIGENCE,
        stack.bootstrap,
        stack.topics,
        f"intelligence-{stack.prefix}",
        stack.workdir / "intelligence.log",
        env={
            "INTELLIGENCE_CONFIG": str(config),
            "PROJECTIONS_QUERY_URL": f"http://127.0.0.1:{stack.query_port}",
        },
    )


def _ingest(stack: Stack, collection: str, *documents: dict[str, Any], tenant: str = "a") -> None:
    response = httpx.post(
        f"{stack.api.url}/v1/collections/{collection}/documents",
        json={"documents": list(documents)},
        headers=stack.tenants[tenant].headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text


def _documents(stack: Stack, collection: str, tenant: str = "a") -> dict[str, dict[str, Any]]:
    response = httpx.get(
        f"{stack.api.url}/v1/collections/{collection}/documents",
        headers=stack.tenants[tenant].headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {d["id"]: d for d in response.json()}


def _ask(
    stack: Stack,
    collection: str,
    tenant: str = "a",
    question: str = "How long is the kettle warranty?",
    **rag: Any,
) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.api.url}/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": question}],
            "mode": "rag",
            "rag": {"collection": collection, "top_k": 3, **rag},
        },
        headers=stack.tenants[tenant].headers,
        timeout=90,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    ANSWERED.append(body["correlation_id"])
    return body


def _indexed(stack: Stack, collection: str, expected: dict[str, str]) -> None:
    """Wait until each document id shows its expected title."""
    wait_until(
        lambda: {k: v["title"] for k, v in _documents(stack, collection).items()} == expected,
        90,
        f"documents {sorted(expected)} indexed",
    )


def test_a_rag_answer_cites_its_sources_and_says_how_grounded_it_is(
    stack: Stack, upstream: OpenAIFake
) -> None:
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    _ingest(
        stack,
        collection,
        {"id": "warranty", "title": "Warranty", "text": WARRANTY, "format": "markdown"},
        {"id": "descaling", "title": "Care", "text": DESCALING, "metadata": {"lang": "en"}},
    )
    _indexed(stack, collection, {"warranty": "Warranty", "descaling": "Care"})
    upstream.voice = FAITHFUL
    answer = _ask(stack, collection)
    assert answer["output_text"].startswith(FAITHFUL)
    (citation,) = answer["citations"]
    assert citation["document_id"] == "warranty" and citation["valid"] is True
    assert WARRANTY[citation["start"] : citation["end"]].startswith("Every Acme kettle")
    assert answer["grounding"]["score"] > 0.7
    assert answer["grounding"]["unsupported_sentences"] == 0
    assert answer["grounding"]["degraded"] is False
    prompt = upstream.received[-1].body["messages"][0]["content"]
    assert "[1] (Warranty - Warranty) Every Acme kettle carries a two-year warranty" in prompt

    upstream.voice = INVENTED
    invented = _ask(stack, collection, question="And the warranty of Acme kettles?")
    assert invented["grounding"]["unsupported_sentences"] >= 1
    assert invented["grounding"]["score"] < min(0.7, answer["grounding"]["score"])
    assert [c["valid"] for c in invented["citations"]] == [False]
    run = httpx.get(
        f"{stack.api.url}/v1/runs/{invented['correlation_id']}",
        headers=stack.tenants["a"].headers,
        timeout=30,
    ).json()
    kinds = [e["event_type"] for e in run["events"]]
    assert {"retrieval.query.completed", "hallucination.check.completed"} <= set(kinds)
    assert "rag.citation.missing" in kinds  # "Shipping is free on every order." cites nothing


def test_updates_and_deletes_take_effect_and_the_same_text_changes_nothing(
    stack: Stack, upstream: OpenAIFake
) -> None:
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    _ingest(stack, collection, {"id": "warranty", "title": "Old", "text": "A one-year warranty."})
    _indexed(stack, collection, {"warranty": "Old"})
    first = _documents(stack, collection)["warranty"]
    _ingest(stack, collection, {"id": "warranty", "title": "Old", "text": "A one-year warranty."})
    _ingest(stack, collection, {"id": "warranty", "title": "New", "text": WARRANTY})
    _indexed(stack, collection, {"warranty": "New"})
    assert _documents(stack, collection)["warranty"]["content_hash"] != first["content_hash"]
    upstream.voice = FAITHFUL
    _ask(stack, collection)
    prompt = upstream.received[-1].body["messages"][0]["content"]
    assert "two-year warranty" in prompt and "one-year" not in prompt

    response = httpx.delete(
        f"{stack.api.url}/v1/collections/{collection}/documents/warranty",
        headers=stack.tenants["a"].headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    _indexed(stack, collection, {})
    _ask(stack, collection)
    assert "(none found)" in upstream.received[-1].body["messages"][0]["content"]


def test_metadata_filters_choose_which_documents_may_answer(
    stack: Stack, upstream: OpenAIFake
) -> None:
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    _ingest(
        stack,
        collection,
        {"id": "warranty", "text": WARRANTY, "metadata": {"lang": "en", "topic": "legal"}},
        {"id": "descaling", "text": DESCALING, "metadata": {"lang": "en", "topic": "care"}},
    )
    _indexed(stack, collection, {"warranty": "", "descaling": ""})
    upstream.voice = FAITHFUL
    _ask(stack, collection, question="What does the kettle need?", filters={"topic": "care"})
    prompt = upstream.received[-1].body["messages"][0]["content"]
    assert "Descale the kettle" in prompt and "warranty" not in prompt
    _ask(stack, collection, question="What does the kettle need?", filters={"lang": "fr"})
    assert "(none found)" in upstream.received[-1].body["messages"][0]["content"]


def test_another_tenant_never_retrieves_these_documents(stack: Stack, upstream: OpenAIFake) -> None:
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    _ingest(stack, collection, {"id": "warranty", "text": WARRANTY})
    _indexed(stack, collection, {"warranty": ""})
    assert _documents(stack, collection, tenant="b") == {}
    upstream.voice = FAITHFUL
    answer = _ask(stack, collection, tenant="b")
    assert answer["citations"] == [] or all(not c["valid"] for c in answer["citations"])
    assert "(none found)" in upstream.received[-1].body["messages"][0]["content"]


RAG_TABLES = ("rag_documents", "rag_chunks", "rag_postings", "groundings")


def _one_row(stack: Stack, sql: str) -> dict[str, Any]:
    response = httpx.get(
        f"http://127.0.0.1:{stack.query_port}/",
        params={"query": f"{sql} FORMAT JSONEachRow"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    row: dict[str, Any] = json.loads(response.text)
    return row


def _digests(stack: Stack) -> dict[str, tuple[int, int]]:
    """Rows and an order-free hash of each retrieval table as readers see it (FINAL)."""
    found = {}
    for table in RAG_TABLES:
        sql = f"SELECT count() AS n, sum(cityHash64(*)) AS h FROM {table} FINAL"  # noqa: S608
        row = _one_row(stack, sql)
        found[table] = (int(row["n"]), int(row["h"]))
    return found


def test_a_replay_rebuilds_the_retrieval_tables_identically(stack: Stack) -> None:
    # A run's check precedes its answer on its partition: once every answer is projected,
    # every check is.
    answers = "SELECT count() AS n FROM events WHERE event_type = 'rag.answer.completed'"
    wait_until(lambda: int(_one_row(stack, answers)["n"]) == len(ANSWERED), 60, "projection")
    before = _digests(stack)
    assert all(rows > 0 for rows, _ in before.values()), before
    replayed = run_cli(
        "replay",
        "--tables",
        *RAG_TABLES,
        port=stack.query_port,
        bootstrap=stack.bootstrap,
        topics=stack.topics,
        data_dir=stack.workdir / "chdb",
    )
    assert '"status": "done"' in replayed.stdout, replayed.stdout + replayed.stderr
    assert _digests(stack) == before


def test_a_failing_vector_path_falls_back_to_keywords_and_says_so(
    stack: Stack, upstream: OpenAIFake
) -> None:
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    _ingest(stack, collection, {"id": "warranty", "title": "Warranty", "text": WARRANTY})
    _indexed(stack, collection, {"warranty": "Warranty"})
    processor = stack.processes.pop()  # the intelligence processor started by the fixture
    processor.terminate()
    assert processor.wait(timeout=60) == 0
    no_time = "retrieval:\n  vector_timeout_ms: 0\n"
    stack.processes.append(_intelligence(stack, stack.workdir / "no-vectors.yaml", no_time))
    upstream.voice = FAITHFUL
    answer = _ask(stack, collection)
    assert answer["grounding"]["degraded"] is True
    assert answer["grounding"]["retrieval_mode"] == "keyword"
    assert answer["citations"][0]["document_id"] == "warranty"


def test_rag_requests_are_checked_at_the_edge(stack: Stack) -> None:
    headers = stack.tenants["a"].headers
    for body in (
        {"messages": [{"role": "user", "content": "hi"}], "mode": "rag"},
        {"messages": [{"role": "user", "content": "hi"}], "rag": {"collection": "kb"}},
        {
            "messages": [{"role": "user", "content": "hi"}],
            "mode": "rag",
            "rag": {"collection": "kb"},
            "stream": True,
        },
    ):
        response = httpx.post(
            f"{stack.api.url}/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert response.status_code == 422, response.text
    bad = httpx.post(
        f"{stack.api.url}/v1/collections/kb/documents",
        json={"documents": [{"id": "x", "text": ""}]},
        headers=headers,
        timeout=30,
    )
    assert bad.status_code == 422, bad.text


def _ingest_cli(stack: Stack, collection: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processors.intelligence", "ingest", collection, str(folder)],
        cwd=REPO,
        env={
            **os.environ,
            "PLATFORM_API_URL": stack.api.url,
            "PLATFORM_API_KEY": stack.tenants["a"].key,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_ingests_folders_of_text_markdown_html_and_jsonl(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    (folder / "guides").mkdir(parents=True)
    (folder / "guides" / "care.md").write_text("# Kettle care\n\n" + DESCALING)
    (folder / "warranty.html").write_text("<h1>Warranty</h1><p>Two years, parts and labour.</p>")
    (folder / "notes.txt").write_text("Kettles boil water.")
    (folder / "faq.jsonl").write_text(
        json.dumps({"id": "faq-1", "text": "Yes, it is dishwasher safe.", "title": "FAQ"}) + "\n"
    )
    collection = f"kb-{uuid.uuid4().hex[:8]}"
    result = _ingest_cli(stack, collection, folder)
    assert result.returncode == 0, result.stderr
    assert "sent 4 documents" in result.stdout
    expected = {
        "guides/care.md": "Kettle care",
        "warranty.html": "Warranty",
        "notes.txt": "notes",
        "faq-1": "FAQ",
    }
    _indexed(stack, collection, expected)

    (folder / "broken.jsonl").write_text('{"id": "x", "text": "fine"}\n{"id": "y"}\n')
    refused = _ingest_cli(stack, collection, folder)
    assert refused.returncode == 2
    assert f"{folder / 'broken.jsonl'}:2:" in refused.stderr
