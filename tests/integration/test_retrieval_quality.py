"""Retrieval quality floors on BEIR SciFact (``bench/scifact_data.py`` says where it is),
through layer 3's chunking and terms, the projections' own migrations in chDB, and the search
SQL that answers ``mode: rag``. ``bench/retrieval_scifact.py`` measures the full benchmark with
the embedding model; here BM25 runs over all 5,183 abstracts, with stand-in vectors (BM25 never
reads them), so the suite stays fast. Floors sit a little below the measured numbers
(docs/BENCHMARKS.md): a regression fails."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from bench.retrieval_scifact import (
    evaluate,
    project,
    scifact_documents,
    scifact_qrels,
    scifact_queries,
)
from bench.scifact_data import scifact_dir
from processors.intelligence.chunking import ChunkingPolicy
from processors.intelligence.embeddings import Vectors, local_embedder
from processors.intelligence.ingestion import content_hash, indexed_payload
from projections import ChdbStore
from projections.migrator import migrate

BM25_NDCG_AT_10 = 0.64  # published BM25: 0.665 (BEIR) to 0.679 (Anserini)


class _StandInVectors:
    """Deterministic unit vectors per text: rows for the HNSW index that no BM25 query reads."""

    name = "stand-in"
    dimension = 384

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = [
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
            .standard_normal(self.dimension)
            .astype(np.float32)
            for t in texts
        ]
        stacked = np.vstack(rows) if rows else np.zeros((0, self.dimension), np.float32)
        unit: Vectors = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
        return unit


@pytest.fixture(scope="module")
def scifact_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    data = scifact_dir()
    assert data.is_dir(), f"SciFact is not at {data}: set SCIFACT_DATA"
    starts = local_embedder().token_starts
    payloads = [
        indexed_payload(d, content_hash(d), _StandInVectors(), starts, ChunkingPolicy())
        for d in scifact_documents(data)
    ]
    store = ChdbStore(Path(tmp_path_factory.mktemp("scifact")))
    migrate(store, "bench", 30)
    project(store, payloads)
    yield store
    store.close()


def test_bm25_over_all_of_scifact_stays_above_its_floor(scifact_store: ChdbStore) -> None:
    data = scifact_dir()
    result = asyncio.run(
        evaluate(
            scifact_store,
            scifact_queries(data),
            scifact_qrels(data),
            "keyword",
            100,
            local_embedder(),
        )
    )
    assert result["ndcg@10"] >= BM25_NDCG_AT_10, result
