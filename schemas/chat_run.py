"""The event types of a chat run that its readers act on: a run ends with exactly one of
``TERMINAL`` (its id fixed by the command), and streams its text as ``DELTA`` events before;
``RESUMED`` says the next attempt's deltas continue the text streamed so far.
One definition for the layer that writes them and the readers that wait for them."""

from __future__ import annotations

__all__ = [
    "COMPLETED",
    "DELTA",
    "FAILED",
    "RAG_COMPLETED",
    "RAG_FAILED",
    "RAG_TERMINAL",
    "RESUMED",
    "STARTED",
    "TERMINAL",
]

STARTED = "llm.request.started"
DELTA = "llm.delta.generated"
RESUMED = "llm.stream.resumed"
COMPLETED = "llm.request.completed"
FAILED = "llm.request.failed"
TERMINAL = frozenset({COMPLETED, FAILED})
# A mode rag run: layer 1's answer is not the end; layer 3's check of its citations is.
RAG_COMPLETED = "rag.answer.completed"
RAG_FAILED = "rag.answer.failed"
RAG_TERMINAL = frozenset({RAG_COMPLETED, RAG_FAILED, FAILED})
