"""``mode: rag`` after the model answered: layer 1's ``llm.request.completed`` becomes the run's
grounding check (``hallucination.check.completed``), one ``rag.citation.missing`` per claim
that cites nothing, and the terminal ``rag.answer.completed`` with the checked citations.

A citation is valid when its number was offered and the sentence citing it is supported; its
span is the cited chunk's place in its document."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, cast

from processors.intelligence.answering import OfferedSource
from processors.intelligence.embeddings import Embedder
from processors.intelligence.grounding import (
    GroundingReport,
    Passage,
    Source,
    check_grounding,
    prepare_passages,
)
from schemas.payloads import (
    Citation,
    HallucinationCheckCompletedPayload,
    LlmRequestCompletedPayload,
    RagAnswerCompletedPayload,
    UnsupportedSentence,
)
from streams.envelope import Envelope, derived_id

__all__ = ["DETECTOR", "PassageCache", "answer_events"]

DETECTOR = "evidence-v1"


class PassageCache:
    """Sources split into sentences and embedded, by chunk version, most recent kept: a chunk
    is one version's text for good, and popular chunks answer many questions, so the embedding
    (most of a check's cost) is paid once per process. A cache, not state: a miss recomputes."""

    def __init__(self, embedder: Embedder, size: int = 4096) -> None:
        self._embedder = embedder
        self._size = size
        self._passages: OrderedDict[tuple[str, int, str], Passage] = OrderedDict()
        self._lock = threading.Lock()  # checks run in worker threads

    def of(self, sources: list[OfferedSource], texts: Mapping[int, str]) -> dict[int, Passage]:
        """By prompt number, each source whose text is known; misses embedded in one batch
        (outside the lock: two checks may embed the same chunk, never block each other)."""
        known = [s for s in sources if texts.get(s.number)]
        with self._lock:
            cached = {s.number: self._passages.get(_key(s)) for s in known}
        missing = [s for s in known if cached[s.number] is None]
        prepared = prepare_passages(
            [Source(f"{s.document_id}#{s.chunk_index}", texts[s.number]) for s in missing],
            self._embedder,
        )
        ready = {n: p for n, p in cached.items() if p is not None}
        ready.update((s.number, p) for s, p in zip(missing, prepared, strict=True))
        with self._lock:
            for source in known:
                self._passages.pop(_key(source), None)
                self._passages[_key(source)] = ready[source.number]  # most recent last
            while len(self._passages) > self._size:
                self._passages.popitem(last=False)
        return ready


def _key(source: OfferedSource) -> tuple[str, int, str]:
    return source.document_id, source.chunk_index, source.content_hash


def answer_events(
    completed: Envelope,
    marker: dict[str, Any],
    sources: list[OfferedSource],
    passages: Mapping[int, Passage],
    embedder: Embedder,
) -> list[Envelope]:
    """Deterministic ids from the completed event: a redelivery repeats the same events."""
    answer = cast(LlmRequestCompletedPayload, completed.payload)
    report = check_grounding(answer.get("output_text") or "", passages, embedder)
    origin = completed.message_id

    def event(message_type: str, payload: Any, slot: str) -> Envelope:
        return completed.derive(message_type, payload, derived_id(origin, f"rag/{slot}"))

    missing = [
        event(
            "rag.citation.missing",
            {"sentence_index": index, "start": sentence.start, "end": sentence.end},
            f"missing/{index}",
        )
        for index, sentence in enumerate(report.sentences)
        if sentence.missing_citation
    ]
    return [
        event("hallucination.check.completed", _check(report), "check"),
        *missing,
        event("rag.answer.completed", _completed(answer, marker, sources, report), "terminal"),
    ]


def _check(report: GroundingReport) -> HallucinationCheckCompletedPayload:
    unsupported: list[UnsupportedSentence] = [
        {
            "sentence_index": index,
            "start": sentence.start,
            "end": sentence.end,
            "score": sentence.score,
            "reasons": sorted({finding.check.value for finding in sentence.findings})
            or ["low_support"],
            "cited": list(sentence.citations),
        }
        for index, sentence in enumerate(report.sentences)
        if not sentence.supported
    ]
    return {
        "detector": DETECTOR,
        "grounding_score": report.score,
        "sentence_count": len(report.checked),
        "unsupported": unsupported,
    }


def _completed(
    answer: LlmRequestCompletedPayload,
    marker: dict[str, Any],
    sources: list[OfferedSource],
    report: GroundingReport,
) -> RagAnswerCompletedPayload:
    by_number = {s.number: s for s in sources}
    supported_numbers = {
        number
        for sentence in report.sentences
        if sentence.supported
        for number in sentence.citations
    }
    cited: list[Citation] = []
    for sentence in report.sentences:
        for number in sentence.citations:
            source = by_number.get(number)
            if source is None or any(c["number"] == number for c in cited):
                continue
            cited.append(
                {
                    "number": number,
                    "document_id": source.document_id,
                    "chunk_index": source.chunk_index,
                    "start": source.start,
                    "end": source.end,
                    "score": source.score,
                    "valid": number in supported_numbers,
                }
            )
    return {
        "provider": answer["provider"],
        "model": answer["model"],
        "output_text": answer.get("output_text"),
        "finish_reason": answer.get("finish_reason"),
        "prompt_tokens": answer["prompt_tokens"],
        "completion_tokens": answer["completion_tokens"],
        "total_tokens": answer["total_tokens"],
        "cost_usd": answer["cost_usd"],
        "citations": cited,
        "grounding_score": report.score,
        "unsupported_sentences": len(report.unsupported),
        "degraded": bool(marker["degraded"]),
        "retrieval_mode": str(marker["mode"]),
    }
