"""The output guardrails on a streamed answer, delta by delta (pure). Text is released once no
continuation can change how ``check_output`` treats it, already redacted, so the released
pieces concatenate to exactly ``check_output``'s text on the whole answer.

What is held back is what a pattern of the policy could still span (``OutputScan.settled``):
a deny term cut short by the end of the text; the trailing run of non-whitespace, however
long, because emails, keys, tokens and IPs grow while they touch the end and have no length
cap worth trusting (a 300-character token is a finding only once its last digits arrive); twice
the longest spaced PII pattern (an IBAN with spaces, 68 characters), and a private-key block
until its END line. Redact- and block-free policies hold nothing back."""

from __future__ import annotations

from processors.foundation.config import GuardrailPolicy
from processors.foundation.guardrails.policy import check_output, scan_output

__all__ = ["StreamGuard"]

# While text is held back, scans are paced: one per _FIRST_PACE new characters until some
# text is out, so the first words go out as soon as they are whole (time to first token),
# then one per _RESCAN_AFTER (about a dozen tokens): a scan and a delta more per answer, and
# the first text out a word after it came instead of 64 characters.
_FIRST_PACE = 8
_RESCAN_AFTER = 64
# A scan reads the answer from a window start this many characters before what was released
# (at a whitespace, outside any redaction): more than any finding that could still change
# reaches back (twice the longest spaced pattern; a finding without whitespace starts after
# a whitespace), so it finds what a scan of the whole answer would, at a cost that does not
# grow with the answer. Deny terms longer than this widen it.
_CONTEXT = 256


class StreamGuard:
    """One answer: ``push`` each raw delta and send what it returns, then send what ``finish``
    returns. While a block rule matches nothing is released; one that still matches at the end
    releases nothing more and the run fails."""

    def __init__(self, policy: GuardrailPolicy) -> None:
        self._policy = policy
        terms = policy.output.deny_terms
        longest_term = max((len(t) for t in terms.terms), default=0) if terms else 0
        self._context = max(_CONTEXT, 2 * longest_term)
        self._text = ""
        self._released = ""
        self._released_raw = 0  # how much of the raw text the released text covers
        self._rescan_at = 0

    @property
    def released_chars(self) -> int:
        """How much redacted text has been let out so far."""
        return len(self._released)

    def push(self, delta: str) -> str:
        """The newly safe text, redacted; empty while it is held back."""
        self._text += delta
        if len(self._text) < self._rescan_at:
            return ""
        base = self._window_start()
        scan = scan_output(self._text[base:], self._policy)
        held = base + scan.settled < len(self._text)
        end, new = scan.releasable_from(self._released_raw - base)
        self._released_raw = base + end
        self._released += new
        pace = _RESCAN_AFTER if self._released else _FIRST_PACE
        self._rescan_at = len(self._text) + (pace if held else 0)
        return new

    def finish(self) -> str:
        """The rest of the redacted answer, now that nothing more can come."""
        outcome = check_output(self._text, self._policy, "")
        if outcome.blocked:
            return ""
        new = outcome.text[len(self._released) :]
        self._released += new
        return new

    def _window_start(self) -> int:
        """A whitespace at least the context before the released point, or the start."""
        limit = self._released_raw - self._context
        if limit <= 0:
            return 0
        space = max(self._text.rfind(c, 0, limit) for c in " \n")
        return max(space, 0)
