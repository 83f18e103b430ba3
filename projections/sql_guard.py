"""Which SQL a reader may send: one statement that only reads.

The stores also enforce ``readonly=1``; this check comes first so the refusal is clear, and it
covers what ``readonly`` lets through (several statements in one request, ``SYSTEM`` commands,
``INTO OUTFILE`` writing a file on the embedded engine's machine)."""

from __future__ import annotations

import itertools

__all__ = ["NotReadOnly", "read_only_statement"]

_READING = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
_QUOTES = "'\"`"


class NotReadOnly(ValueError):
    """The statement could write or is not a single statement."""


def read_only_statement(sql: str) -> str:
    """``sql`` without trailing semicolons, if it is one reading statement."""
    statement = sql.strip().rstrip(";").rstrip()
    words, semicolons = _scan(statement)
    if not words:
        raise NotReadOnly("empty query")
    if semicolons:
        raise NotReadOnly("one statement at a time")
    if words[0] not in _READING:
        raise NotReadOnly(f"only reading statements are allowed, not {words[0]}")
    if any(pair == ("INTO", "OUTFILE") for pair in itertools.pairwise(words)):
        raise NotReadOnly("INTO OUTFILE is not allowed")
    return statement


def _scan(sql: str) -> tuple[list[str], int]:
    """Upper-cased bare words and the count of semicolons outside quotes and comments."""
    words: list[str] = []
    semicolons = 0
    word: list[str] = []
    i = 0
    while i < len(sql):
        char = sql[i]
        if char.isalnum() or char == "_":
            word.append(char)
            i += 1
            continue
        if word:
            words.append("".join(word).upper())
            word = []
        if sql.startswith("--", i) or char == "#":
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
        elif char in _QUOTES:
            i = _end_of_quoted(sql, i)
        else:
            semicolons += char == ";"
            i += 1
    if word:
        words.append("".join(word).upper())
    return words, semicolons


def _end_of_quoted(sql: str, start: int) -> int:
    """Index after the literal or quoted name opening at ``start`` (backslash escapes and
    doubled quotes, as ClickHouse reads them)."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return i
