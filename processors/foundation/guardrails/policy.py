"""A ``GuardrailPolicy`` applied to a request's messages (input) or to the answer (output),
purely: detectors run on the text as given, redactions are applied once at the end from
spans on that same text, so offsets stay right however many findings a message has."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Literal, Protocol

from processors.foundation.config import GuardrailAction, GuardrailPolicy, PiiEntity
from processors.foundation.guardrails.injection import score_injection
from processors.foundation.guardrails.pii import find_pii, settled_length
from processors.foundation.providers.base import ChatMessage

__all__ = [
    "GuardrailOutcome",
    "OutputScan",
    "Stage",
    "Violation",
    "check_input",
    "check_output",
    "scan_output",
]

Stage = Literal["input", "output"]
Span = tuple[int, int, int]  # (message_index, start, end); the output text is message 0
Redaction = tuple[int, int, str]  # (start, end, placeholder) in one text

# Roles whose content the client's developer wrote; injection is looked for everywhere else
# (user turns, tool results, replayed assistant turns).
_TRUSTED_ROLES = frozenset({"system", "developer"})
_HASH_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Violation:
    """One rule that matched. ``value_hash`` is the SHA-256 of the matched values, so an
    incident can be correlated without the event ever holding the raw value."""

    stage: Stage
    policy: str
    rule: str
    action: GuardrailAction
    spans: list[Span]
    value_hash: str
    score: float | None = None


@dataclass(frozen=True)
class GuardrailOutcome:
    """The input stage fills ``messages``, the output stage ``text`` (both redacted where a
    rule said so); ``blocked_by`` names the first blocking rule."""

    violations: list[Violation]
    messages: list[ChatMessage] = field(default_factory=list)
    text: str = ""
    blocked_by: str | None = None

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None


@dataclass(frozen=True)
class OutputScan:
    """The output rules that change or stop the answer, run on a text that may still grow (a
    stream so far). ``settled`` is how much of its start no continuation can change."""

    text: str
    redactions: list[Redaction]  # merged, by start
    blocked_by: str | None
    settled: int

    def releasable_from(self, start: int) -> tuple[int, str]:
        """From ``start`` (a point released before) to the end of the settled part, cut back to
        the start of a redaction it would split (that span may still grow): where that is, and
        the text redacted; nothing while a block rule matches. Redactions before ``start`` were
        applied when it was released."""
        end = self.settled
        for first, stop, _ in self.redactions:
            if first < end < stop:
                end = first
        if self.blocked_by is not None or end <= start:
            return start, ""
        inside = [
            (a - start, b - start, label)
            for a, b, label in self.redactions
            if a >= start and b <= end
        ]
        return end, _apply(self.text[start:end], inside)


class _PiiRule(Protocol):
    @property
    def action(self) -> GuardrailAction: ...
    @property
    def entities(self) -> list[PiiEntity]: ...


class _TermRule(Protocol):
    @property
    def action(self) -> GuardrailAction: ...
    @property
    def terms(self) -> list[str]: ...


class _ContentRules(Protocol):
    """What the input policy and its ``output`` rules have in common."""

    @property
    def pii(self) -> _PiiRule | None: ...
    @property
    def deny_terms(self) -> _TermRule | None: ...


@dataclass(frozen=True)
class _Match:
    """A rule's hits before they become a ``Violation`` (and, for redact, placeholders)."""

    rule: str
    label: str  # in the placeholder: [REDACTED:<label>]
    action: GuardrailAction
    spans: list[Span]
    values: list[str]
    score: float | None = None


def check_input(
    messages: list[ChatMessage], model: str | None, policy: GuardrailPolicy, policy_name: str
) -> GuardrailOutcome:
    """Model allow/deny, injection, PII and deny terms on every message's ``content``. A model
    is only checked when the request names one (otherwise the route decides)."""
    texts = [m.content or "" for m in messages]
    matches = [
        *_model_matches(model, policy),
        *_injection_matches(messages, policy),
        *_content_matches(texts, policy),
    ]
    redacted = _redact(texts, matches)
    guarded = [
        replace(m, content=text) if m.content is not None else m
        for m, text in zip(messages, redacted, strict=True)
    ]
    return _outcome("input", policy_name, matches, messages=guarded)


def check_output(text: str, policy: GuardrailPolicy, policy_name: str) -> GuardrailOutcome:
    """PII and deny terms of ``policy.output`` on the provider's answer."""
    matches = _content_matches([text], policy.output)
    return _outcome("output", policy_name, matches, text=_redact([text], matches)[0])


def scan_output(text: str, policy: GuardrailPolicy) -> OutputScan:
    """``check_output``'s redact and block rules on a stream's text so far; flag rules change
    nothing a client sees, so they are left to ``check_output`` on the whole answer."""
    pii, terms = policy.output.pii, policy.output.deny_terms
    matches: list[_Match] = []
    settled = len(text)
    if pii is not None and pii.action != "flag":
        matches += _pii_matches([text], pii.entities, pii.action)
        settled = min(settled, settled_length(text, pii.entities))
    if terms is not None and terms.action != "flag":
        matches += _term_matches([text], terms.terms, terms.action)
        settled = min(settled, _terms_settled(text, terms.terms))
    return OutputScan(text, _redactions(matches).get(0, []), _blocked_by(matches), settled)


def _outcome(
    stage: Stage,
    policy_name: str,
    matches: list[_Match],
    *,
    messages: list[ChatMessage] | None = None,
    text: str = "",
) -> GuardrailOutcome:
    violations = [
        Violation(
            stage=stage,
            policy=policy_name,
            rule=m.rule,
            action=m.action,
            spans=m.spans,
            value_hash=_hash(m.values),
            score=m.score,
        )
        for m in matches
    ]
    return GuardrailOutcome(violations, messages or [], text, _blocked_by(matches))


def _blocked_by(matches: list[_Match]) -> str | None:
    return next((m.rule for m in matches if m.action == "block"), None)


def _hash(values: list[str]) -> str:
    return hashlib.sha256(_HASH_SEPARATOR.join(values).encode()).hexdigest()


def _model_matches(model: str | None, policy: GuardrailPolicy) -> list[_Match]:
    if model is None:
        return []
    denied = any(fnmatchcase(model, glob) for glob in policy.deny_models)
    not_allowed = bool(policy.allow_models) and not any(
        fnmatchcase(model, glob) for glob in policy.allow_models
    )
    return [_Match("model.denied", "MODEL", "block", [], [model])] if denied or not_allowed else []


def _injection_matches(messages: list[ChatMessage], policy: GuardrailPolicy) -> list[_Match]:
    """One violation for the request, scored by its most suspicious message."""
    rule = policy.injection
    if rule is None:
        return []
    spans: list[Span] = []
    values: list[str] = []
    top = 0.0
    for index, message in enumerate(messages):
        if message.role in _TRUSTED_ROLES or not message.content:
            continue
        verdict = score_injection(message.content)
        if verdict.score >= rule.threshold:
            top = max(top, verdict.score)
            spans += [(index, start, end) for start, end in verdict.spans]
            values += [message.content[start:end] for start, end in verdict.spans]
    if not spans:
        return []
    return [_Match("injection.prompt_injection", "INJECTION", rule.action, spans, values, top)]


def _content_matches(texts: list[str], rules: _ContentRules) -> list[_Match]:
    matches = []
    if rules.pii is not None:
        matches += _pii_matches(texts, rules.pii.entities, rules.pii.action)
    if rules.deny_terms is not None:
        matches += _term_matches(texts, rules.deny_terms.terms, rules.deny_terms.action)
    return matches


def _pii_matches(
    texts: list[str], entities: Iterable[PiiEntity], action: GuardrailAction
) -> list[_Match]:
    """One violation per entity type (``pii.email``, ``pii.credit_card``...)."""
    wanted = list(entities)
    by_entity: dict[str, _Match] = {}
    for index, text in enumerate(texts):
        for finding in find_pii(text, wanted):
            match = by_entity.setdefault(
                finding.entity,
                _Match(f"pii.{finding.entity}", finding.entity.upper(), action, [], []),
            )
            match.spans.append((index, finding.start, finding.end))
            match.values.append(text[finding.start : finding.end])
    return list(by_entity.values())


def _term_matches(texts: list[str], terms: list[str], action: GuardrailAction) -> list[_Match]:
    """Case-insensitive, whole words only (``(?<!\\w)`` / ``(?!\\w)``, so terms that start or
    end with punctuation work too); spaces in a term match any whitespace."""
    if not terms:
        return []
    pattern = _term_pattern(tuple(terms))
    spans: list[Span] = []
    values: list[str] = []
    for index, text in enumerate(texts):
        for m in pattern.finditer(text):
            spans.append((index, *m.span()))
            values.append(m.group())
    return [_Match("terms.deny", "TERM", action, spans, values)] if spans else []


@lru_cache(maxsize=64)
def _term_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted((r"\s+".join(map(re.escape, t.split())) for t in terms), key=len)
    return re.compile(r"(?<!\w)(?:" + "|".join(reversed(alternatives)) + r")(?!\w)", re.I)


def _terms_settled(text: str, terms: list[str]) -> int:
    r"""Where a deny term cut short by the end of the text could start (its first letters, or
    whole words and the whitespace after them, or the whole term still awaiting a ``(?!\w)``):
    from there on, appended text can still make or unmake a match."""
    cut_short = _cut_short_term(tuple(terms)).search(text) if terms else None
    return cut_short.start() if cut_short is not None else len(text)


@lru_cache(maxsize=64)
def _cut_short_term(terms: tuple[str, ...]) -> re.Pattern[str]:
    """Every non-empty prefix of every term, as nested optional groups (``f(?:a(?:l)?)?``),
    a space between words matching any whitespace, the prefix ending the text."""

    def prefix(chars: str) -> str:
        head = r"\s+" if chars[0] == " " else re.escape(chars[0])
        return head + (f"(?:{prefix(chars[1:])})?" if len(chars) > 1 else "")

    alternatives = (prefix(" ".join(term.split())) for term in terms if term.split())
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")\Z", re.I)


def _redact(texts: list[str], matches: list[_Match]) -> list[str]:
    """Replace every span of a redact rule by ``[REDACTED:<label>]``."""
    out = list(texts)
    for index, redactions in _redactions(matches).items():
        out[index] = _apply(out[index], redactions)
    return out


def _redactions(matches: list[_Match]) -> dict[int, list[Redaction]]:
    """The redact rules' spans per text, merged."""
    per_text: dict[int, list[Redaction]] = {}
    for m in matches:
        if m.action == "redact":
            label = f"[REDACTED:{m.label}]"
            for index, start, end in m.spans:
                per_text.setdefault(index, []).append((start, end, label))
    return {index: _merged(spans) for index, spans in per_text.items()}


def _merged(spans: list[Redaction]) -> list[Redaction]:
    """Overlapping spans merged under the label of the one that starts first (the longest,
    when two start together); sorted by start."""
    merged: list[Redaction] = []
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, label))
    return merged


def _apply(text: str, merged: list[Redaction]) -> str:
    """Right to left, so earlier offsets stay valid."""
    for start, end, label in reversed(merged):
        text = text[:start] + label + text[end:]
    return text
