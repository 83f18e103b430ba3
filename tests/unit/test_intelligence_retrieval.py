"""The pure parts of retrieval: BM25 terms, reciprocal rank fusion, the rag prompt and the
sources it records for the answer's check."""

from __future__ import annotations

import asyncio
from typing import Any

from processors.intelligence.answering import (
    chat_command_payload,
    offered_sources,
    question_of,
)
from processors.intelligence.config import Answering, Retrieval
from processors.intelligence.embeddings import local_embedder
from processors.intelligence.retrieval import Hit, Search, fused, search
from processors.intelligence.terms import terms
from schemas.payloads import RagAnswerRequestedPayload


def test_terms_are_stemmed_words_without_stop_words() -> None:
    assert terms("The studies REDUCED mortality by 30% in 2019, and it's running.") == [
        "studi",
        "reduc",
        "mortal",
        "30",
        "2019",
        "s",
        "run",
    ]


def _hit(document: str, score: float, text: str = "") -> Hit:
    return Hit(document, 0, "h", score, text=text)


def test_fusion_rewards_what_both_searches_found() -> None:
    vector = [_hit("a", 0.9), _hit("b", 0.8), _hit("c", 0.7)]
    keyword = [_hit("c", 12.0), _hit("d", 9.0)]
    ranked = fused(vector, keyword, rrf_k=60, limit=3)
    assert [h.document_id for h in ranked] == ["c", "a", "b"]  # b and d tie: by id
    assert ranked[0].vector_score == 0.7 and ranked[0].keyword_score == 12.0
    assert ranked[1].keyword_score is None


def _request() -> RagAnswerRequestedPayload:
    return {
        "collection": "docs",
        "top_k": 2,
        "filters": {},
        "retrieval_mode": "hybrid",
        "chat": {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "How long is the warranty?"},
            ],
            "mode": "rag",
            "stop": [],
            "stream": False,
            "cache": "default",
            "metadata": {"team": "support"},
        },
    }


def test_the_prompt_numbers_the_sources_and_records_them_for_the_check() -> None:
    found = Search(
        [
            Hit("warranty", 0, "h1", 0.03, text="The warranty lasts two years.", start=0, end=29),
            Hit("returns", 2, "h2", 0.02, text="Returns take 30 days.", title="Returns", end=21),
        ],
        "hybrid",
        None,
        12,
    )
    request = _request()
    assert question_of(request["chat"]) == "How long is the warranty?"
    chat = chat_command_payload(request, found, Answering())
    system = chat["messages"][0]["content"]
    assert "[1] The warranty lasts two years." in system
    assert "[2] (Returns) Returns take 30 days." in system
    assert chat["messages"][1:] == request["chat"]["messages"]
    assert chat["metadata"]["team"] == "support"
    recorded = offered_sources(chat["metadata"])
    assert recorded is not None
    marker, sources = recorded
    assert marker["collection"] == "docs" and not marker["degraded"]
    assert [(s.number, s.document_id, s.chunk_index, s.content_hash) for s in sources] == [
        (1, "warranty", 0, "h1"),
        (2, "returns", 2, "h2"),
    ]


def test_runs_that_are_not_rag_have_no_recorded_sources() -> None:
    assert offered_sources({"team": "support"}) is None


class _FailingVectors:
    """Rows for the keyword SQL; the vector SQL fails, as a broken HNSW index would."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, sql: str) -> list[dict[str, Any]]:
        self.asked.append(sql)
        if "cosineDistance" in sql:
            raise RuntimeError("index unavailable")
        if "PARTITION BY term" in sql:
            return [{"document_id": "d", "chunk_index": 0, "content_hash": "h", "score": 3.5}]
        return [
            {
                "document_id": "d",
                "chunk_index": 0,
                "content_hash": "h",
                "text": "found by keywords",
                "start": 0,
                "end": 17,
                "title": "",
                "heading": "",
            }
        ]


def test_a_failing_vector_search_leaves_keywords_to_answer_and_says_why() -> None:
    rows = _FailingVectors()
    found = asyncio.run(
        search(
            rows,
            local_embedder(),
            database="db",
            tenant="t",
            collection="c",
            query="kettle warranty",
            mode="hybrid",
            top_k=3,
            filters={"lang": "en"},
            settings=Retrieval(),
        )
    )
    assert found.mode == "keyword"
    assert found.degraded_reason == "vector search failed: RuntimeError: index unavailable"
    assert [(h.document_id, h.text, h.keyword_score) for h in found.hits] == [
        ("d", "found by keywords", 3.5)
    ]
    assert all("tenant_id = 't'" in sql for sql in rows.asked)  # the text fetch too
    assert all("['lang'] = 'en'" in sql for sql in rows.asked if "cosineDistance" in sql)
