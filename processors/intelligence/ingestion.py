"""Indexing one document (pure but for the embedder): chunks, their BM25 terms and vectors,
as the ``retrieval.document.indexed`` payload the projector turns into rows.

The content hash covers everything that shapes the chunks (text, title, format, metadata), so
re-sending a document unchanged is recognised, and a changed one is a new version whose chunks
replace the old ones in every query."""

from __future__ import annotations

import hashlib
import json

from processors.intelligence.chunking import Chunk, ChunkingPolicy, TokenStarts, chunk_document
from processors.intelligence.embeddings import Embedder
from processors.intelligence.terms import terms
from schemas.payloads import (
    IndexedChunk,
    RetrievalDocumentIndexedPayload,
    RetrievalUpsertRequestedPayload,
)
from streams.errors import ErrorCode, PlatformError

__all__ = ["MAX_CHUNKS", "content_hash", "indexed_payload", "unchanged_payload"]

MAX_CHUNKS = 200  # about 0.5 MB of event: Kafka's default message limit is 1 MB


def content_hash(document: RetrievalUpsertRequestedPayload) -> str:
    shaped = {
        "text": document["text"],
        "title": document.get("title"),
        "format": document.get("format", "text"),
        "metadata": dict(sorted(document["metadata"].items())),
    }
    return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()


def unchanged_payload(
    document: RetrievalUpsertRequestedPayload, digest: str, model: str
) -> RetrievalDocumentIndexedPayload:
    return _payload(document, digest, model, [])


def indexed_payload(
    document: RetrievalUpsertRequestedPayload,
    digest: str,
    embedder: Embedder,
    token_starts: TokenStarts,
    policy: ChunkingPolicy,
) -> RetrievalDocumentIndexedPayload:
    """Raise ``INVALID_REQUEST`` for a document with no text or too many chunks. Chunks are
    measured in the embedding model's word pieces (``token_starts``)."""
    chunks = chunk_document(document["text"], document.get("format", "text"), token_starts, policy)
    if not chunks:
        raise PlatformError(ErrorCode.INVALID_REQUEST, "the document has no text to index")
    if len(chunks) > MAX_CHUNKS:
        raise PlatformError(
            ErrorCode.INVALID_REQUEST,
            f"the document makes {len(chunks)} chunks, more than {MAX_CHUNKS}: split it",
        )
    title = document.get("title")
    vectors = embedder.embed([_embedded_text(title, chunk) for chunk in chunks])
    indexed: list[IndexedChunk] = [
        {
            "chunk_index": chunk.index,
            "text": chunk.text,
            "start": chunk.start,
            "end": chunk.end,
            "heading": chunk.heading,
            "token_count": chunk.token_count,
            "terms": terms(" ".join(filter(None, (title, chunk.heading, chunk.text)))),
            "embedding": vector.tolist(),
        }
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    return _payload(document, digest, embedder.name, indexed)


def _embedded_text(title: str | None, chunk: Chunk) -> str:
    """The chunk as the model sees it: what it is about first, then what it says."""
    return "\n".join(filter(None, (title, chunk.heading, chunk.text)))


def _payload(
    document: RetrievalUpsertRequestedPayload,
    digest: str,
    model: str,
    chunks: list[IndexedChunk],
) -> RetrievalDocumentIndexedPayload:
    """No chunks: this version is indexed already (``unchanged``)."""
    return {
        "collection": document["collection"],
        "document_id": document["document_id"],
        "content_hash": digest,
        "title": document.get("title"),
        "metadata": document["metadata"],
        "embedding_model": model,
        "unchanged": not chunks,
        "chunks": chunks,
    }
