"""Sentences of an answer with their character spans, and the inline citations each one makes.

``mode: rag`` prompts number their sources and ask for markers at the end of each sentence:
``... reduces mortality [2].``, ``[1][3]``, ``[1, 3]`` or ``[1-3]``. A marker written just after
the full stop (``... mortality. [2]``) still belongs to the sentence before it. Splitting is a
scanner over ``.!?`` rather than an NLP model: it knows abbreviations (``e.g.``, ``et al.``,
``Fig.``), initials and decimals (``3.5``), which is what answers over documents contain."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "split_sentences", "strip_citations"]

_MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|[-\u2013])\s*\d+)*)\s*\]")
_MARKERS_AHEAD = re.compile(r"(?:\s*\[\s*\d+(?:\s*(?:[,;]|[-\u2013])\s*\d+)*\s*\])+")
_BREAK = re.compile(r"\n[ \t]*(?:\n|[-*\u2022]\s|\d+[.)]\s|#)")  # blank line, list item, heading
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*")
_ABBREVIATIONS = frozenset(
    "e.g i.e al etc vs cf fig figs eq eqs ref refs no nos vol approx ca dr mr mrs ms prof st jr sr"
    " inc ltd co corp dept univ jan feb mar apr jun jul aug sep sept oct nov dec resp".split()
)
_LARGEST_RANGE = 50  # "[1-3]" expands; a nonsense "[1-99999]" must not


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``answer[start:end] == text``; ``citations`` are the source numbers its
    markers name, in order of first mention."""

    text: str
    start: int
    end: int
    citations: tuple[int, ...]

    @property
    def claim(self) -> str:
        """The sentence without its citation markers: what the sources must support."""
        return strip_citations(self.text)


def strip_citations(text: str) -> str:
    """``text`` without ``[n]`` markers, with the space before each marker removed."""
    return re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub("", text)).strip()


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text`` in order, each with its span and citations."""
    sentences: list[Sentence] = []
    block_start = 0
    for brk in _BREAK.finditer(text):
        sentences += _split_block(text, block_start, brk.start())
        block_start = brk.start() + 1
    sentences += _split_block(text, block_start, len(text))
    return sentences


def _split_block(text: str, start: int, stop: int) -> list[Sentence]:
    out: list[Sentence] = []
    begin = start
    for end in _END.finditer(text, start, stop):
        cut = end.end()
        markers = _MARKERS_AHEAD.match(text, cut, stop)
        if markers:
            cut = markers.end()
        if not _ends_sentence(text, end.start(), cut, stop):
            continue
        out += _sentence(text, begin, cut)
        begin = cut
    out += _sentence(text, begin, stop)
    return out


def _ends_sentence(text: str, dot: int, cut: int, stop: int) -> bool:
    following = text[cut:stop].lstrip()
    if cut < stop and not text[cut].isspace():
        return False  # "3.5", "e.g.,", "U.S.A"
    if following and not (
        following[0].isupper() or following[0].isdigit() or following[0] in "\"'(["
    ):
        return False
    if text[dot] != ".":
        return True
    word = re.search(r"([A-Za-z][A-Za-z.]*)$", text[_start_of_word(text, dot) : dot])
    if word is None:
        return True
    token = word.group(1).lower()
    if token in _ABBREVIATIONS:
        return False
    return not (len(token) == 1 and word.group(1).isupper())  # an initial: "J. Smith"


def _start_of_word(text: str, index: int) -> int:
    """Where the whitespace-delimited word that ends at ``index`` begins."""
    begin = index
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    return begin


def _sentence(text: str, begin: int, end: int) -> list[Sentence]:
    while begin < end and text[begin].isspace():
        begin += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    if begin == end:
        return []
    span = text[begin:end]
    return [Sentence(span, begin, end, _citations(span))]


def _citations(span: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for marker in _MARKER.finditer(span):
        for part in re.split(r"\s*[,;]\s*", marker.group(1)):
            low, _, high = re.sub(r"\s", "", part).replace("\u2013", "-").partition("-")
            first, last = int(low), int(high or low)
            if last < first or last - first > _LARGEST_RANGE:
                last = first
            numbers += range(first, last + 1)
    return tuple(dict.fromkeys(numbers))
