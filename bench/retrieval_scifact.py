"""Retrieval quality and speed on BEIR SciFact (5,183 abstracts, 300 test queries), through the
same code and SQL that answer ``mode: rag``: layer 3's chunking, terms and embeddings, the
``retrieval.document.indexed`` rows projected into chDB by the real migrations, and
``processors.intelligence.retrieval.search``.

    .venv/bin/python -m bench.retrieval_scifact [--data DIR] [--copies 9] [--throughput 200]

Prints indexing speed on the first ``--throughput`` abstracts (chunks/s: chunking, terms,
embedding; and sentences/s embedded in one batch); then, for keyword (BM25), vector and hybrid
search: nDCG@10 and recall@100 over documents (a document ranks where its best chunk does) and
query latency p50/p99; with ``--copies N``, latency again over N copies of the corpus in one
collection (N x 12,069 chunks, for the 100k-chunk figure). Embedded chunks are cached under
``bench/.cache`` so a rerun skips the model. Numbers only; goals never asserted."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import math
import re
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.scifact_data import scifact_dir
from processors.intelligence.chunking import ChunkingPolicy
from processors.intelligence.config import Retrieval
from processors.intelligence.embeddings import Embedder, local_embedder
from processors.intelligence.ingestion import content_hash, indexed_payload
from processors.intelligence.retrieval import search
from projections import ChdbStore
from projections.migrator import migrate
from projections.rows import INSERT_SETTINGS
from schemas.payloads import RetrievalDocumentIndexedPayload, RetrievalUpsertRequestedPayload

DATABASE = "bench"
TENANT = "scifact"
_CACHE = Path(__file__).resolve().parent / ".cache"


def scifact_documents(data: Path) -> list[RetrievalUpsertRequestedPayload]:
    with gzip.open(data / "corpus.jsonl.gz", "rt") as lines:
        return [
            {
                "collection": "scifact",
                "document_id": str(doc["_id"]),
                "text": doc["text"],
                "title": doc["title"] or None,
                "format": "text",
                "metadata": {},
            }
            for doc in map(json.loads, lines)
        ]


def _indexed(
    documents: list[RetrievalUpsertRequestedPayload], policy: ChunkingPolicy
) -> tuple[list[RetrievalDocumentIndexedPayload], float | None]:
    """The payloads, from the cache when it matches; else computed (and chunks/s measured)."""
    key = hashlib.sha256(
        json.dumps([policy.max_tokens, policy.overlap_tokens, len(documents)]).encode()
    ).hexdigest()[:16]
    cached = _CACHE / f"scifact-{key}.jsonl.gz"
    if cached.exists():
        with gzip.open(cached, "rt") as lines:
            return [json.loads(line) for line in lines], None
    embedder = local_embedder()
    started = time.perf_counter()
    payloads = []
    for number, document in enumerate(documents, start=1):
        digest = content_hash(document)
        payloads.append(indexed_payload(document, digest, embedder, embedder.token_starts, policy))
        if number % 500 == 0:
            print(f"  indexed {number}/{len(documents)}", flush=True)
    elapsed = time.perf_counter() - started
    _CACHE.mkdir(exist_ok=True)
    with gzip.open(cached, "wt") as out:
        out.writelines(json.dumps(p) + "\n" for p in payloads)
    chunks = sum(len(p["chunks"]) for p in payloads)
    return payloads, chunks / elapsed


def throughput(documents: list[RetrievalUpsertRequestedPayload], policy: ChunkingPolicy) -> None:
    """Indexing (chunks, terms, vectors) and bare embedding of sentences, in this process."""
    embedder = local_embedder()
    embedder.embed(["warm up"])
    started = time.perf_counter()
    chunks = sum(
        len(indexed_payload(d, content_hash(d), embedder, embedder.token_starts, policy)["chunks"])
        for d in documents
    )
    print(f"indexing: {chunks / (time.perf_counter() - started):.1f} chunks/s ({chunks} chunks)")
    sentences = [s for d in documents for s in re.split(r"(?<=\.) (?=[A-Z])", d["text"])]
    started = time.perf_counter()
    embedder.embed(sentences)
    print(f"embedding: {len(sentences) / (time.perf_counter() - started):.1f} sentences/s")


def project(
    store: ChdbStore, payloads: list[RetrievalDocumentIndexedPayload], copy: int = 0
) -> None:
    """The payloads as ``events`` rows: the materialized views build the retrieval tables."""
    lines = []
    for number, payload in enumerate(payloads):
        if copy:
            payload = {**payload, "document_id": f"{payload['document_id']}~{copy}"}
        lines.append(
            json.dumps(
                {
                    "event_id": f"{copy}-{number}",
                    "event_type": "retrieval.document.indexed",
                    "schema_version": 1,
                    "timestamp": "2026-12-01 00:00:00",
                    "layer": 3,
                    "service_name": "bench",
                    "env": "dev",
                    "correlation_id": f"doc:{payload['document_id']}",
                    "tenant_id": TENANT,
                    "payload": payload,
                }
            )
        )
    for start in range(0, len(lines), 500):
        store.insert(f"{DATABASE}.events", "\n".join(lines[start : start + 500]), INSERT_SETTINGS)


def scifact_queries(data: Path) -> dict[str, str]:
    with (data / "queries.jsonl").open() as lines:
        return {str(q["_id"]): q["text"] for q in map(json.loads, lines)}


def scifact_qrels(data: Path) -> dict[str, set[str]]:
    """The test split's judgements: query id -> relevant document ids."""
    relevant: dict[str, set[str]] = defaultdict(set)
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, document, score = line.split("\t")
        if int(score) > 0:
            relevant[query].add(document)
    return relevant


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    gain = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return gain / ideal


async def evaluate(
    store: ChdbStore,
    queries: dict[str, str],
    qrels: dict[str, set[str]],
    mode: str,
    depth: int,
    embedder: Embedder,
) -> dict[str, float]:
    """Each judged query searched through ``search``: mean nDCG@10 and recall@100 over
    documents, and the latency percentiles."""

    async def rows(sql: str) -> list[dict[str, Any]]:
        return store.rows(sql)

    settings = Retrieval(candidates=depth)
    ndcgs, recalls, latencies = [], [], []
    for query_id, relevant in qrels.items():
        started = time.perf_counter()
        found = await search(
            rows,
            embedder,
            database=DATABASE,
            tenant=TENANT,
            collection="scifact",
            query=queries[query_id],
            mode=mode,
            top_k=depth,
            filters={},
            settings=settings,
        )
        latencies.append((time.perf_counter() - started) * 1000)
        documents = list(dict.fromkeys(h.document_id.split("~")[0] for h in found.hits))
        ndcgs.append(ndcg_at_10(documents, relevant))
        recalls.append(len(relevant & set(documents[:100])) / len(relevant))
    latencies.sort()
    return {
        "ndcg@10": statistics.mean(ndcgs),
        "recall@100": statistics.mean(recalls),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=scifact_dir())
    parser.add_argument(
        "--copies", type=int, default=0, help="also time N copies in one collection"
    )
    parser.add_argument("--depth", type=int, default=100, help="chunks each search returns")
    parser.add_argument(
        "--throughput", type=int, default=200, help="documents to time indexing on (0: skip)"
    )
    args = parser.parse_args()
    policy = ChunkingPolicy()
    documents = scifact_documents(args.data)
    if args.throughput:
        throughput(documents[: args.throughput], policy)
    payloads, chunks_per_s = _indexed(documents, policy)
    chunks = sum(len(p["chunks"]) for p in payloads)
    print(f"SciFact: {len(documents)} documents, {chunks} chunks")
    if chunks_per_s is not None:
        print(f"indexing (chunk, terms, embed; 1 process): {chunks_per_s:.1f} chunks/s")
    queries = scifact_queries(args.data)
    qrels = scifact_qrels(args.data)
    with tempfile.TemporaryDirectory() as directory:
        store = ChdbStore(Path(directory))
        migrate(store, DATABASE, 30)
        started = time.perf_counter()
        project(store, payloads, 0)
        print(f"projected in {time.perf_counter() - started:.1f} s")
        print("| search | nDCG@10 | recall@100 | p50 ms | p99 ms |\n|---|---|---|---|---|")
        for mode in ("keyword", "vector", "hybrid"):
            result = asyncio.run(
                evaluate(store, queries, qrels, mode, args.depth, local_embedder())
            )
            print(
                f"| {mode} | {result['ndcg@10']:.3f} | {result['recall@100']:.3f} "
                f"| {result['p50_ms']:.1f} | {result['p99_ms']:.1f} |",
                flush=True,
            )
        if args.copies:
            for copy in range(1, args.copies):
                project(store, payloads, copy)
            chunks_sql = f"SELECT count() AS n FROM {DATABASE}.rag_chunks"  # noqa: S608
            total = store.rows(chunks_sql)[0]["n"]
            print(f"\nlatency over {total} chunks (top 10):")
            print("| search | p50 ms | p99 ms |\n|---|---|---|")
            for mode in ("keyword", "vector", "hybrid"):
                result = asyncio.run(evaluate(store, queries, qrels, mode, 10, local_embedder()))
                print(f"| {mode} | {result['p50_ms']:.1f} | {result['p99_ms']:.1f} |", flush=True)
        store.close()


if __name__ == "__main__":
    main()
