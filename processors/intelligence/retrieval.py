"""Search a collection in ClickHouse: vectors (HNSW where the engine has it), BM25 over the
postings, and both fused by reciprocal rank. The SQL is built here from validated values
(literals escaped); ``Rows`` runs it, so the same code reads chDB's endpoint or a server.

Only the chunks of each document's current version count: ``rag_documents`` says which version
that is (or that it was deleted), and every search and every BM25 statistic (chunk count,
average length, document frequencies) is restricted to those versions and to the request's
metadata filters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from processors.intelligence.config import Retrieval
from processors.intelligence.embeddings import Embedder
from processors.intelligence.terms import terms
from streams.projections_client import sql_literal

__all__ = [
    "Hit",
    "Rows",
    "Search",
    "fused",
    "keyword_sql",
    "search",
    "vector_index_kind",
    "vector_sql",
]

Rows = Callable[[str], Awaitable[list[dict[str, Any]]]]
_CHUNK_COLUMNS = "document_id, chunk_index, content_hash, text, start, end, title, heading"


@dataclass(frozen=True)
class Hit:
    document_id: str
    chunk_index: int
    content_hash: str
    score: float
    vector_score: float | None = None
    keyword_score: float | None = None
    text: str = ""
    start: int = 0
    end: int = 0
    title: str = ""
    heading: str = ""

    @property
    def key(self) -> tuple[str, int, str]:
        return self.document_id, self.chunk_index, self.content_hash


@dataclass(frozen=True)
class Search:
    """What answered: the hits best first, and whether keywords had to answer alone."""

    hits: list[Hit]
    mode: str
    degraded_reason: str | None
    latency_ms: int


def _current_versions(
    database: str,
    tenant: str,
    collection: str,
    filters: Mapping[str, str],
    columns: str = "document_id, argMax(content_hash, changed_at)",
) -> str:
    """Per live document whose metadata matches every filter: ``columns`` of its latest row
    (by default the (document_id, content_hash) pair the chunks of that version carry)."""
    matches = "".join(
        f" AND argMax(metadata, changed_at)[{sql_literal(key)}] = {sql_literal(value)}"
        for key, value in filters.items()
    )
    return (
        f"SELECT {columns} FROM {database}.rag_documents "  # noqa: S608
        f"WHERE tenant_id = {sql_literal(tenant)} AND collection = {sql_literal(collection)} "
        f"GROUP BY document_id HAVING argMax(deleted, changed_at) = 0{matches}"
    )


def _scope(database: str, tenant: str, collection: str, filters: Mapping[str, str]) -> str:
    return (
        f"tenant_id = {sql_literal(tenant)} AND collection = {sql_literal(collection)} "
        f"AND (document_id, content_hash) IN "
        f"({_current_versions(database, tenant, collection, filters)})"
    )


def vector_sql(
    database: str,
    tenant: str,
    collection: str,
    filters: Mapping[str, str],
    vector: Sequence[float],
    limit: int,
) -> str:
    literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
    return (
        f"SELECT {_CHUNK_COLUMNS}, 1 - cosineDistance(embedding, {literal}) AS score "  # noqa: S608
        f"FROM {database}.rag_chunks WHERE {_scope(database, tenant, collection, filters)} "
        f"ORDER BY cosineDistance(embedding, {literal}) ASC, document_id, chunk_index "
        f"LIMIT {int(limit)}"
    )


def keyword_sql(
    database: str,
    tenant: str,
    collection: str,
    filters: Mapping[str, str],
    query_terms: Sequence[str],
    limit: int,
    k1: float,
    b: float,
) -> str:
    """Okapi BM25 with Lucene's idf, ln(1 + (N - df + 0.5) / (df + 0.5)), over live chunks.
    One read of the query terms' postings (the sorting key starts with the term): document
    frequencies are a window count over it; chunk count and average length come from the
    documents' totals. The explicit PREWHERE keeps ClickHouse from moving the live-version
    filter there, which reads it for the whole collection first (3x slower, measured)."""
    wanted = "(" + ",".join(sql_literal(t) for t in sorted(set(query_terms)) or ["''"]) + ")"
    totals = _current_versions(
        database,
        tenant,
        collection,
        filters,
        "argMax(chunk_count, changed_at) AS c, argMax(term_total, changed_at) AS t",
    )
    return (
        f"WITH (SELECT (sum(c), sum(t)) FROM ({totals})) AS totals, "  # noqa: S608
        f"totals.1 AS chunks, totals.2 / greatest(totals.1, 1) AS average_length "
        f"SELECT document_id, chunk_index, content_hash, sum("
        f"log(1 + (chunks - df + 0.5) / (df + 0.5)) * tf * ({k1} + 1) "
        f"/ (tf + {k1} * (1 - {b} + {b} * term_count / average_length))) AS score FROM ("
        f"SELECT document_id, chunk_index, content_hash, tf, term_count, "
        f"count() OVER (PARTITION BY term) AS df FROM {database}.rag_postings "
        f"PREWHERE tenant_id = {sql_literal(tenant)} AND collection = {sql_literal(collection)} "
        f"AND term IN {wanted} WHERE (document_id, content_hash) IN "
        f"({_current_versions(database, tenant, collection, filters)})) "
        f"GROUP BY document_id, chunk_index, content_hash "
        f"ORDER BY score DESC, document_id, chunk_index LIMIT {int(limit)}"
    )


def _chunks_sql(
    database: str, tenant: str, collection: str, keys: Sequence[tuple[str, int, str]]
) -> str:
    wanted = ",".join(f"({sql_literal(d)}, {int(i)}, {sql_literal(h)})" for d, i, h in keys)
    return (
        f"SELECT {_CHUNK_COLUMNS} FROM {database}.rag_chunks "  # noqa: S608
        f"WHERE tenant_id = {sql_literal(tenant)} AND collection = {sql_literal(collection)} "
        f"AND (document_id, chunk_index, content_hash) IN ({wanted})"
    )


def fused(vector: Sequence[Hit], keyword: Sequence[Hit], rrf_k: int, limit: int) -> list[Hit]:
    """Reciprocal rank fusion: each list adds 1 / (rrf_k + rank); ties by document, chunk."""
    merged: dict[tuple[str, int, str], Hit] = {}
    for rank, hit in enumerate(vector, start=1):
        merged[hit.key] = replace(hit, score=1.0 / (rrf_k + rank), vector_score=hit.score)
    for rank, hit in enumerate(keyword, start=1):
        earlier = merged.get(hit.key)
        share = 1.0 / (rrf_k + rank)
        merged[hit.key] = (
            replace(earlier, score=earlier.score + share, keyword_score=hit.score)
            if earlier is not None
            else replace(hit, score=share, keyword_score=hit.score)
        )
    ranked = sorted(merged.values(), key=lambda h: (-h.score, h.document_id, h.chunk_index))
    return ranked[:limit]


def _hits(rows: list[dict[str, Any]], kind: str) -> list[Hit]:
    return [
        Hit(
            document_id=str(row["document_id"]),
            chunk_index=int(row["chunk_index"]),
            content_hash=str(row["content_hash"]),
            score=float(row["score"]),
            vector_score=float(row["score"]) if kind == "vector" else None,
            keyword_score=float(row["score"]) if kind == "keyword" else None,
            text=str(row.get("text", "")),
            start=int(row.get("start", 0)),
            end=int(row.get("end", 0)),
            title=str(row.get("title", "")),
            heading=str(row.get("heading", "")),
        )
        for row in rows
    ]


async def search(
    rows: Rows,
    embedder: Embedder,
    *,
    database: str,
    tenant: str,
    collection: str,
    query: str,
    mode: str,
    top_k: int,
    filters: Mapping[str, str],
    settings: Retrieval,
) -> Search:
    """The ``top_k`` best chunks. The vector path (embedding the query, then the vector
    search) has ``vector_timeout_ms``; when it fails or runs out of time, BM25 answers alone
    and the search says why. A keyword search that fails fails the search."""
    started = time.perf_counter()
    depth = max(settings.candidates, top_k)
    keyword_query = keyword_sql(
        database,
        tenant,
        collection,
        filters,
        terms(query),
        depth,
        settings.bm25.k1,
        settings.bm25.b,
    )
    keyword: asyncio.Future[list[Hit]] | None = None
    if mode in ("hybrid", "keyword"):
        keyword = asyncio.ensure_future(_keyword_hits(rows, keyword_query))
    vector: list[Hit] = []
    reason: str | None = None
    if mode in ("hybrid", "vector"):
        try:
            vector = await asyncio.wait_for(
                _vector_hits(rows, embedder, database, tenant, collection, filters, query, depth),
                settings.vector_timeout_ms / 1000,
            )
        except TimeoutError:
            reason = f"vector search took longer than {settings.vector_timeout_ms} ms"
        except Exception as error:  # any failure of this path means keywords alone
            reason = f"vector search failed: {type(error).__name__}: {error}"[:300]
        if reason is not None and keyword is None:
            keyword = asyncio.ensure_future(_keyword_hits(rows, keyword_query))
    keyword_hits = await keyword if keyword is not None else []
    if reason is not None or mode == "keyword":
        chosen, answered = keyword_hits[:top_k], "keyword"
    elif mode == "vector":
        chosen, answered = vector[:top_k], "vector"
    else:
        chosen, answered = fused(vector, keyword_hits, settings.rrf_k, top_k), "hybrid"
    chosen = await _with_text(rows, database, tenant, collection, chosen)
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Search(chosen, answered, reason, latency_ms)


async def _keyword_hits(rows: Rows, sql: str) -> list[Hit]:
    return _hits(await rows(sql), "keyword")


async def _vector_hits(
    rows: Rows,
    embedder: Embedder,
    database: str,
    tenant: str,
    collection: str,
    filters: Mapping[str, str],
    query: str,
    depth: int,
) -> list[Hit]:
    vector = (await asyncio.to_thread(embedder.embed, [query]))[0]
    sql = vector_sql(database, tenant, collection, filters, np.asarray(vector).tolist(), depth)
    return _hits(await rows(sql), "vector")


async def _with_text(
    rows: Rows, database: str, tenant: str, collection: str, hits: list[Hit]
) -> list[Hit]:
    """Keyword hits come without their text; fetch what is missing in one query."""
    missing = [hit.key for hit in hits if not hit.text]
    if not missing:
        return hits
    found = {
        (str(r["document_id"]), int(r["chunk_index"]), str(r["content_hash"])): r
        for r in await rows(_chunks_sql(database, tenant, collection, missing))
    }
    completed = []
    for hit in hits:
        row = found.get(hit.key)
        if hit.text or row is None:
            completed.append(hit)
            continue
        completed.append(
            replace(
                hit,
                text=str(row["text"]),
                start=int(row["start"]),
                end=int(row["end"]),
                title=str(row["title"]),
                heading=str(row["heading"]),
            )
        )
    return completed


async def vector_index_kind(rows: Rows, database: str) -> str:
    """``hnsw`` when rag_chunks has its vector_similarity index, else ``exact``."""
    found = await rows(
        "SELECT count() AS n FROM system.data_skipping_indices "  # noqa: S608
        f"WHERE database = {sql_literal(database)} AND table = 'rag_chunks' "
        "AND type = 'vector_similarity'"
    )
    return "hnsw" if found and int(found[0]["n"]) > 0 else "exact"
