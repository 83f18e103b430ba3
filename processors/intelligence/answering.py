"""``mode: rag`` before the model answers (pure): the question to search for, the sources as a
numbered prompt, and the chat command to layer 1 that carries, in its metadata, which sources
it offered, so the answer finds them again on any replica (layer 1 echoes the metadata on
``llm.request.completed``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from processors.intelligence.config import Answering
from processors.intelligence.retrieval import Hit, Search
from schemas.payloads import (
    ChatMessage,
    LlmChatRequestedPayload,
    RagAnswerRequestedPayload,
    RetrievalQueryCompletedPayload,
)

__all__ = [
    "RAG_METADATA_KEY",
    "OfferedSource",
    "chat_command_payload",
    "offered_sources",
    "query_completed",
    "question_of",
]

RAG_METADATA_KEY = "platform.rag"


@dataclass(frozen=True)
class OfferedSource:
    """Source ``number`` in the prompt: which chunk of which document version it was."""

    number: int
    document_id: str
    chunk_index: int
    content_hash: str
    score: float
    start: int
    end: int


def question_of(chat: LlmChatRequestedPayload) -> str:
    """The last user message's text: what retrieval searches for."""
    for message in reversed(chat["messages"]):
        if message["role"] == "user":
            return _text(message.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def query_completed(
    request: RagAnswerRequestedPayload, found: Search, index: str
) -> RetrievalQueryCompletedPayload:
    return {
        "collection": request["collection"],
        "mode": found.mode,  # type: ignore[typeddict-item]  # one of the RetrievalMode symbols
        "degraded": found.degraded_reason is not None,
        "degraded_reason": found.degraded_reason,
        "vector_index": index,
        "results": [
            {
                "rank": rank,
                "document_id": hit.document_id,
                "chunk_index": hit.chunk_index,
                "content_hash": hit.content_hash,
                "score": hit.score,
                "vector_score": hit.vector_score,
                "keyword_score": hit.keyword_score,
            }
            for rank, hit in enumerate(found.hits, start=1)
        ],
        "latency_ms": found.latency_ms,
    }


def chat_command_payload(
    request: RagAnswerRequestedPayload, found: Search, answering: Answering
) -> LlmChatRequestedPayload:
    """The client's request with a system message of numbered sources in front."""
    chat = request["chat"]
    sources = "\n\n".join(
        f"[{number}] {_label(hit)}{hit.text[: answering.max_source_chars]}"
        for number, hit in enumerate(found.hits, start=1)
    )
    system: ChatMessage = {
        "role": "system",
        "content": f"{answering.instructions}\n\nSources:\n\n{sources or '(none found)'}",
    }
    offered = [
        [hit.document_id, hit.chunk_index, hit.content_hash, hit.score, hit.start, hit.end]
        for hit in found.hits
    ]
    marker = {
        "collection": request["collection"],
        "mode": found.mode,
        "degraded": found.degraded_reason is not None,
        "sources": offered,
    }
    metadata = {**chat["metadata"], RAG_METADATA_KEY: json.dumps(marker, separators=(",", ":"))}
    return {**chat, "messages": [system, *chat["messages"]], "mode": "rag", "metadata": metadata}


def _label(hit: Hit) -> str:
    label = " - ".join(filter(None, (hit.title, hit.heading)))
    return f"({label}) " if label else ""


def offered_sources(metadata: dict[str, str]) -> tuple[dict[str, Any], list[OfferedSource]] | None:
    """What ``chat_command_payload`` recorded, from the echoed metadata; None for other runs."""
    raw = metadata.get(RAG_METADATA_KEY)
    if raw is None:
        return None
    marker = json.loads(raw)
    sources = [
        OfferedSource(number, str(d), int(c), str(h), float(s), int(start), int(end))
        for number, (d, c, h, s, start, end) in enumerate(marker["sources"], start=1)
    ]
    return marker, sources
