"""``configs/intelligence.yaml`` validated (errors name file, line and field): how documents are
chunked, how retrieval searches and fuses, and the prompt ``mode: rag`` sends to layer 1."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from streams.config import load_config

__all__ = [
    "DEFAULT_CONFIG",
    "Answering",
    "Bm25",
    "Chunking",
    "IntelligenceConfig",
    "Retrieval",
    "load_intelligence_config",
]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "intelligence.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Chunking(_Strict):
    max_tokens: int = Field(200, ge=16, le=254)  # the model reads 256 word pieces
    overlap_tokens: int = Field(32, ge=0)


class Bm25(_Strict):
    k1: float = Field(0.9, ge=0)  # Anserini's defaults, which its BEIR baselines use
    b: float = Field(0.4, ge=0, le=1)


class Retrieval(_Strict):
    candidates: int = Field(50, ge=1, le=1000)  # each search's depth before fusion
    rrf_k: int = Field(60, ge=1)  # reciprocal rank fusion's constant (Cormack et al.)
    vector_timeout_ms: int = Field(1500, ge=0)  # past it, keywords answer alone (degraded)
    bm25: Bm25 = Bm25()


class Answering(_Strict):
    instructions: str = (
        "Answer the question using only the numbered sources below. After each sentence, cite "
        "the sources that support it by number, like [1] or [1][3]. If the sources do not "
        "contain the answer, say that you do not know."
    )
    max_source_chars: int = Field(2000, ge=100)


class IntelligenceConfig(_Strict):
    chunking: Chunking = Chunking()
    retrieval: Retrieval = Retrieval()
    answering: Answering = Answering()


def load_intelligence_config(path: Path | None = None) -> IntelligenceConfig:
    """``path``, else ``INTELLIGENCE_CONFIG``, else ``configs/intelligence.yaml``."""
    return load_config(
        path or Path(os.environ.get("INTELLIGENCE_CONFIG") or DEFAULT_CONFIG), IntelligenceConfig
    )
