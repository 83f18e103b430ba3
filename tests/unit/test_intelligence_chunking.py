"""Chunking by structure, then tokens, with overlap; offsets point into the plain text."""

from __future__ import annotations

from itertools import pairwise

from processors.intelligence.chunking import ChunkingPolicy, chunk_document, plain_text
from processors.intelligence.embeddings import local_embedder

starts = local_embedder().token_starts


def count(text: str) -> int:
    return len(starts(text)) + 2  # with the model's two special tokens


def test_markdown_chunks_keep_their_heading_and_offsets() -> None:
    text = "# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n\nThen restart."
    chunks = chunk_document(text, "markdown", starts, ChunkingPolicy())
    assert [(c.heading, c.text) for c in chunks] == [
        ("Guide", "Intro text."),
        ("Install", "Run the installer.\n\nThen restart."),
    ]
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text


def test_long_sections_split_within_the_limit_with_overlap() -> None:
    sentences = [f"Fact number {i} is stated here." for i in range(60)]
    text = " ".join(sentences)
    policy = ChunkingPolicy(max_tokens=50, overlap_tokens=12)
    chunks = chunk_document(text, "text", starts, policy)
    assert len(chunks) > 3
    assert all(count(c.text) == c.token_count <= 50 for c in chunks)
    for earlier, later in pairwise(chunks):
        assert later.start < earlier.end  # the overlap repeats the end of the previous chunk
    covered = "".join(text[c.start : c.end] for c in chunks)
    assert all(sentence in covered for sentence in sentences)


def test_a_word_run_longer_than_the_limit_is_cut_at_words() -> None:
    text = " ".join(["supercalifragilistic"] * 200)
    chunks = chunk_document(text, "text", starts, ChunkingPolicy(max_tokens=40, overlap_tokens=0))
    assert all(count(c.text) <= 40 for c in chunks)
    assert chunks[-1].end == len(text)


def test_html_becomes_text_under_its_headings() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body><h1>Guide</h1>"
        "<p>First &amp; foremost.</p><h2>Install</h2><p>Run it.</p><ul><li>one</li></ul></body>"
    )
    plain = plain_text(html, "html")
    chunks = chunk_document(html, "html", starts, ChunkingPolicy())
    assert [(c.heading, c.text) for c in chunks] == [
        ("Guide", "First & foremost."),
        ("Install", "Run it.\n\none"),
    ]
    assert "p{}" not in plain
    for chunk in chunks:
        assert plain[chunk.start : chunk.end] == chunk.text


def test_blank_documents_make_no_chunks() -> None:
    assert chunk_document("  \n\n ", "text", starts, ChunkingPolicy()) == []
