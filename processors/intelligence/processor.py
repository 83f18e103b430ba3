"""The intelligence processor: ``python -m streams run processors.intelligence.processor:
PROCESSOR``. It indexes documents (``retrieval.upsert.requested`` / ``retrieval.delete.requested``
into ``retrieval.document.*``), and runs ``mode: rag``: a ``rag.answer.requested`` is searched
(``retrieval.query.completed``) and sent to layer 1 as an ``llm.chat.requested`` with numbered
sources; layer 1's ``llm.request.completed`` for it comes back here, its citations and grounding
are checked, and ``rag.answer.completed`` ends the run.

Reads ClickHouse (the projections) through its HTTP interface, never writes it: the chunks reach
it through the events. Config from ``INTELLIGENCE_CONFIG`` (default ``configs/intelligence.yaml``),
read at start."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from processors.intelligence.answering import (
    OfferedSource,
    chat_command_payload,
    offered_sources,
    query_completed,
    question_of,
)
from processors.intelligence.chunking import ChunkingPolicy
from processors.intelligence.config import IntelligenceConfig, load_intelligence_config
from processors.intelligence.embeddings import MiniLM, local_embedder
from processors.intelligence.grounded import PassageCache, answer_events
from processors.intelligence.ingestion import content_hash, indexed_payload, unchanged_payload
from processors.intelligence.retrieval import search, vector_index_kind
from schemas.payloads import (
    LlmRequestCompletedPayload,
    RagAnswerRequestedPayload,
    RetrievalDeleteRequestedPayload,
    RetrievalUpsertRequestedPayload,
)
from streams.envelope import Envelope
from streams.errors import ErrorCode, PlatformError
from streams.processing import Processor
from streams.projections_client import (
    ProjectionsClient,
    ProjectionsUnavailable,
    projections_database,
    projections_url,
    sql_literal,
)

__all__ = ["PROCESSOR"]


@dataclass
class _Parts:
    config: IntelligenceConfig
    embedder: MiniLM
    projections: ProjectionsClient
    passages: PassageCache
    vector_index: str | None = None


class _Intelligence:
    """Loads the config, the model and the ClickHouse client on the first message, in the
    runner's process and event loop."""

    def __init__(self) -> None:
        self._parts: _Parts | None = None

    async def __call__(self, message: Envelope) -> list[Envelope]:
        parts = self._parts or await self._start()
        kind = message.message_type
        if kind == "retrieval.upsert.requested":
            return [await self._indexed(parts, message)]
        if kind == "retrieval.delete.requested":
            document = cast(RetrievalDeleteRequestedPayload, message.payload)
            deleted = {"collection": document["collection"], "document_id": document["document_id"]}
            return [message.derive("retrieval.document.deleted", deleted)]
        if kind == "rag.answer.requested":
            return await self._retrieved(parts, message)
        return await self._answered(parts, message)

    async def _start(self) -> _Parts:
        config = load_intelligence_config()
        embedder = await asyncio.to_thread(local_embedder)
        projections = ProjectionsClient(projections_url(), projections_database())
        self._parts = _Parts(config, embedder, projections, PassageCache(embedder))
        return self._parts

    async def _indexed(self, parts: _Parts, message: Envelope) -> Envelope:
        document = cast(RetrievalUpsertRequestedPayload, message.payload)
        digest = content_hash(document)
        if await self._current_hash(parts, message.tenant_id, document) == digest:
            return message.derive(
                "retrieval.document.indexed",
                unchanged_payload(document, digest, parts.embedder.name),
            )
        policy = ChunkingPolicy(
            parts.config.chunking.max_tokens, parts.config.chunking.overlap_tokens
        )
        try:
            payload = await asyncio.to_thread(
                indexed_payload,
                document,
                digest,
                parts.embedder,
                parts.embedder.token_starts,
                policy,
            )
        except PlatformError as error:
            failed = {
                "collection": document["collection"],
                "document_id": document["document_id"],
                "error_code": error.code.value,
                "message": error.message,
            }
            return message.derive("retrieval.document.failed", failed)
        return message.derive("retrieval.document.indexed", payload)

    @staticmethod
    async def _current_hash(
        parts: _Parts, tenant: str, document: RetrievalUpsertRequestedPayload
    ) -> str | None:
        """The version indexed now, if any; None when ClickHouse cannot say (indexing again
        is harmless: the rows of one version are the same every time)."""
        database = parts.projections.database
        try:
            rows = await parts.projections.rows(
                f"SELECT argMax(content_hash, changed_at) AS h, argMax(deleted, changed_at) AS d "  # noqa: S608
                f"FROM {database}.rag_documents WHERE tenant_id = {sql_literal(tenant)} "
                f"AND collection = {sql_literal(document['collection'])} "
                f"AND document_id = {sql_literal(document['document_id'])} HAVING count() > 0"
            )
        except ProjectionsUnavailable:
            return None
        return str(rows[0]["h"]) if rows and int(rows[0]["d"]) == 0 else None

    async def _retrieved(self, parts: _Parts, message: Envelope) -> list[Envelope]:
        request = cast(RagAnswerRequestedPayload, message.payload)
        database = parts.projections.database
        try:
            if parts.vector_index is None:
                parts.vector_index = await vector_index_kind(parts.projections.rows, database)
            found = await search(
                parts.projections.rows,
                parts.embedder,
                database=database,
                tenant=message.tenant_id,
                collection=request["collection"],
                query=question_of(request["chat"]),
                mode=request.get("retrieval_mode", "hybrid"),
                top_k=request["top_k"],
                filters=request["filters"],
                settings=parts.config.retrieval,
            )
        except ProjectionsUnavailable as error:
            reason = {
                "error_code": ErrorCode.DEPENDENCY_UNAVAILABLE.value,
                "message": f"retrieval: {error}",
            }
            return [
                message.derive(
                    "retrieval.query.failed", {"collection": request["collection"], **reason}
                ),
                message.derive("rag.answer.failed", {**reason, "retryable": True}),
            ]
        return [
            message.derive(
                "retrieval.query.completed", query_completed(request, found, parts.vector_index)
            ),
            message.derive(
                "llm.chat.requested", chat_command_payload(request, found, parts.config.answering)
            ),
        ]

    async def _answered(self, parts: _Parts, message: Envelope) -> list[Envelope]:
        completed = cast(LlmRequestCompletedPayload, message.payload)
        offered = offered_sources(dict(completed.get("metadata") or {}))
        if offered is None:
            return []  # not a mode rag run
        marker, sources = offered
        texts = await _source_texts(parts, message.tenant_id, marker["collection"], sources)
        return await asyncio.to_thread(self._checked, parts, message, marker, sources, texts)

    @staticmethod
    def _checked(
        parts: _Parts,
        message: Envelope,
        marker: dict[str, Any],
        sources: list[OfferedSource],
        texts: dict[int, str],
    ) -> list[Envelope]:
        passages = parts.passages.of(sources, texts)
        return answer_events(message, marker, sources, passages, parts.embedder)


async def _source_texts(
    parts: _Parts, tenant: str, collection: str, sources: list[OfferedSource]
) -> dict[int, str]:
    """Each offered source's text, by number (ClickHouse has kept every version's chunks)."""
    if not sources:
        return {}
    database = parts.projections.database
    wanted = ",".join(
        f"({sql_literal(s.document_id)}, {s.chunk_index}, {sql_literal(s.content_hash)})"
        for s in sources
    )
    rows = await parts.projections.rows(
        f"SELECT document_id, chunk_index, content_hash, text FROM {database}.rag_chunks "  # noqa: S608
        f"WHERE tenant_id = {sql_literal(tenant)} AND collection = {sql_literal(collection)} "
        f"AND (document_id, chunk_index, content_hash) IN ({wanted})"
    )
    by_key = {(r["document_id"], int(r["chunk_index"]), r["content_hash"]): r["text"] for r in rows}
    return {
        s.number: str(by_key.get((s.document_id, s.chunk_index, s.content_hash), ""))
        for s in sources
    }


PROCESSOR = Processor(
    name="intelligence",
    layer=3,
    accepts=frozenset(
        {
            "retrieval.upsert.requested",
            "retrieval.delete.requested",
            "rag.answer.requested",
            "llm.request.completed",
        }
    ),
    handler=_Intelligence(),
    max_in_flight_per_partition=4,
    # It reads all of events.llm for the few answers of mode rag runs: fetching in bulk took
    # its CPU per chat request from 0.44 to 0.27 ms (bench/gateway, 200 RPS; BENCHMARKS.md),
    # and a rag answer waits at most this much more.
    fetch_wait_ms=50,
)
