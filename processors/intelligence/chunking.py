"""Documents into chunks (pure): by structure first, then by tokens, with overlap.

A document becomes blocks (paragraphs, list items, HTML block elements), each under the
heading it sits below (Markdown ``#`` lines, HTML ``h1``-``h6``). Consecutive blocks under one
heading are packed into a chunk up to ``max_tokens`` word pieces of the embedding model; a
block too long on its own is cut at sentence ends, and a sentence too long at word ends. Each
new chunk under the same heading starts with the last ``overlap_tokens`` of the previous one, so
a fact that straddles a boundary is whole in one of them. Offsets (``start``/``end``) are
character positions in the document's plain text: the text itself, or HTML's text content."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["Chunk", "ChunkingPolicy", "TokenStarts", "chunk_document", "plain_text"]

TokenStarts = Callable[[str], Sequence[int]]  # where each word piece of a text starts
SpanTokens = Callable[[int, int], int]  # word pieces of text[start:end], special ones included

_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"\S+")
_HTML_BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "tr", "table", "section", "article", "blockquote", "pre", "br"}
)
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_SKIPPED = frozenset({"script", "style", "head", "title", "noscript"})


@dataclass(frozen=True)
class ChunkingPolicy:
    max_tokens: int = 200  # the model reads 256; room for the title and heading in front
    overlap_tokens: int = 32


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int
    end: int
    heading: str | None
    token_count: int  # word pieces, the model's two special ones included


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    heading: str | None


def plain_text(text: str, document_format: str) -> str:
    """What the chunks' offsets refer to: HTML's text content, blocks on their own lines."""
    return _parsed_html(text).text() if document_format == "html" else text


def _parsed_html(html: str) -> _HtmlText:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return parser


def chunk_document(
    text: str, document_format: str, token_starts: TokenStarts, policy: ChunkingPolicy
) -> list[Chunk]:
    """The text is tokenized once; any span's size is then two binary searches (word pieces
    never cross whitespace, so a span's count is the pieces that start inside it)."""
    if document_format == "html":
        parsed = _parsed_html(text)
        plain = parsed.text()
        blocks = _html_blocks(plain, parsed.headings)
    else:
        plain = text
        blocks = _markdown_blocks(plain) if document_format == "markdown" else _paragraphs(plain)
    starts = token_starts(plain)

    def count(start: int, end: int) -> int:
        return bisect_left(starts, end) - bisect_left(starts, start) + 2

    pieces = [
        piece for block in blocks for piece in _fitting(plain, block, count, policy.max_tokens)
    ]
    return list(_packed(plain, pieces, count, policy))


def _paragraphs(text: str, heading: str | None = None, offset: int = 0) -> Iterator[_Block]:
    position = 0
    for separator in [*_BLANK_LINES.finditer(text), None]:
        end = separator.start() if separator else len(text)
        block = text[position:end]
        if block.strip():
            lead = len(block) - len(block.lstrip())
            yield _Block(offset + position + lead, offset + position + len(block.rstrip()), heading)
        position = separator.end() if separator else len(text)


def _markdown_blocks(text: str) -> Iterator[_Block]:
    heading: str | None = None
    section_start = 0
    position = 0
    for line in text.splitlines(keepends=True):
        match = _MARKDOWN_HEADING.match(line.rstrip("\n"))
        if match:
            yield from _paragraphs(text[section_start:position], heading, section_start)
            heading = match.group(2).strip()
            section_start = position + len(line)
        position += len(line)
    yield from _paragraphs(text[section_start:], heading, section_start)


def _html_blocks(plain: str, headings: list[tuple[int, str]]) -> Iterator[_Block]:
    """Blocks of the plain text, each under the HTML heading (offset, text) before it."""
    for block in _paragraphs(plain):
        above = [title for at, title in headings if at <= block.start]
        heading_text = above[-1] if above else None
        if heading_text is not None and plain[block.start : block.end] == heading_text:
            continue  # the heading line itself is carried by the blocks below it
        yield _Block(block.start, block.end, heading_text)


def _fitting(text: str, block: _Block, count: SpanTokens, limit: int) -> Iterator[_Block]:
    """The block, or its sentences, or its words, each piece within ``limit`` tokens."""
    if count(block.start, block.end) <= limit:
        yield block
        return
    for start, end in _spans(text, block, _SENTENCE_END):
        if count(start, end) <= limit:
            yield _Block(start, end, block.heading)
            continue
        yield from _word_windows(text, _Block(start, end, block.heading), count, limit)


def _spans(text: str, block: _Block, separator: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    position = block.start
    for match in separator.finditer(text, block.start, block.end):
        yield position, match.start()
        position = match.end()
    yield position, block.end


def _word_windows(text: str, block: _Block, count: SpanTokens, limit: int) -> Iterator[_Block]:
    words = list(_WORD.finditer(text, block.start, block.end))
    first = 0
    while first < len(words):
        last = first
        while last + 1 < len(words) and count(words[first].start(), words[last + 1].end()) <= limit:
            last += 1
        yield _Block(words[first].start(), words[last].end(), block.heading)
        first = last + 1


def _packed(
    text: str, pieces: list[_Block], count: SpanTokens, policy: ChunkingPolicy
) -> Iterator[Chunk]:
    """Consecutive pieces under one heading share a chunk while they fit; a new chunk under
    the same heading begins with the previous chunk's last ``overlap_tokens``."""
    index = 0
    current: _Block | None = None
    for piece in pieces:
        if current is not None and piece.heading == current.heading:
            merged = _Block(current.start, piece.end, current.heading)
            if count(merged.start, merged.end) <= policy.max_tokens:
                current = merged
                continue
            yield _chunk(text, index, current, count)
            index += 1
            start = _overlap_start(text, current, piece, count, policy)
            current = _Block(start, piece.end, piece.heading)
            continue
        if current is not None:
            yield _chunk(text, index, current, count)
            index += 1
        current = piece
    if current is not None:
        yield _chunk(text, index, current, count)


def _chunk(text: str, index: int, block: _Block, count: SpanTokens) -> Chunk:
    return Chunk(
        index,
        text[block.start : block.end],
        block.start,
        block.end,
        block.heading,
        count(block.start, block.end),
    )


def _overlap_start(
    text: str, previous: _Block, piece: _Block, count: SpanTokens, policy: ChunkingPolicy
) -> int:
    """The earliest word of ``previous`` from which its tail fits the overlap and, with
    ``piece``, the chunk; ``piece.start`` when none does."""
    start = piece.start
    for word in reversed(list(_WORD.finditer(text, previous.start, previous.end))):
        if count(word.start(), previous.end) > policy.overlap_tokens:
            break
        if count(word.start(), piece.end) > policy.max_tokens:
            break
        start = word.start()
    return start


class _HtmlText(HTMLParser):
    """HTML's text content, a blank line after each block element, and where headings are."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._length = 0
        self._skipping = 0
        self._heading: list[str] | None = None
        self._heading_at = 0
        self.headings: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIPPED:
            self._skipping += 1
        elif tag in _HTML_HEADINGS:
            self._break()
            self._heading, self._heading_at = [], self._length
        elif tag in _HTML_BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _HTML_HEADINGS and self._heading is not None:
            title = " ".join("".join(self._heading).split())
            if title:
                self.headings.append((self._heading_at, title))
            self._heading = None
            self._break()
        elif tag in _HTML_BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        text = " ".join(data.split())
        if not text:
            return
        if self._parts and not self._parts[-1].endswith(("\n", " ")):
            text = " " + text
        if self._heading is not None:
            self._heading.append(text)
        self._add(text)

    def _break(self) -> None:
        if self._parts and not self._parts[-1].endswith("\n\n"):
            self._add("\n\n")

    def _add(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def text(self) -> str:
        return "".join(self._parts).strip()
