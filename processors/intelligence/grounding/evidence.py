"""Sources prepared for checking: split into sentences, each embedded once.

A retrieved chunk is checked against many answers, so its preparation is a value the caller can
keep (keyed by chunk id and content hash) and hand back: only the answer's own sentences are
embedded per check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.intelligence.embeddings import Embedder, Vectors
from processors.intelligence.grounding.citations import Sentence, split_sentences
from processors.intelligence.grounding.lexicon import Lexicon, lexicon

__all__ = ["Passage", "Source", "prepare_passages"]


@dataclass(frozen=True)
class Source:
    """A source offered to the model: the id the run cites it by and its text."""

    source_id: str
    text: str


@dataclass(frozen=True, eq=False)
class Passage:
    """A source with one unit vector per sentence (``vectors[i]`` is ``sentences[i]``'s) and the
    lexicon of its whole text, which number and name checks read."""

    source_id: str
    text: str
    sentences: tuple[Sentence, ...]
    vectors: Vectors
    lexicon: Lexicon
    sentence_lexicons: tuple[Lexicon, ...]
    folded: str  # lower-cased text: a name is present when it occurs in it


def prepare_passages(sources: Sequence[Source], embedder: Embedder) -> list[Passage]:
    """Each source split and embedded, all sentences of all sources in one batch."""
    split = [split_sentences(source.text) or _whole(source.text) for source in sources]
    vectors = embedder.embed([s.text for sentences in split for s in sentences])
    bounds = np.cumsum([0, *(len(sentences) for sentences in split)])
    return [
        Passage(
            source_id=source.source_id,
            text=source.text,
            sentences=tuple(sentences),
            vectors=vectors[bounds[i] : bounds[i + 1]],
            lexicon=lexicon(source.text),
            sentence_lexicons=tuple(lexicon(s.text) for s in sentences),
            folded=source.text.lower(),
        )
        for i, (source, sentences) in enumerate(zip(sources, split, strict=True))
    ]


def _whole(text: str) -> list[Sentence]:
    """An empty or blank source still gets one row, so indices line up."""
    return [Sentence(text, 0, len(text), ())]
