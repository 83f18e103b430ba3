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

# Each scan reads the whole answer so far (a window could split a match and find something
# else), so while text is held back scans are paced to one per this many new characters, about
# a dozen tokens: a 10 KB answer costs ~150 scans, not one per token.
_RESCAN_AFTER = 64


class StreamGuard:
    """One attempt's answer: ``push`` each raw delta and send what it returns, then send what
    ``finish`` returns. While a block rule matches nothing is released; one that still matches
    at the end releases nothing more and the run fails."""

    def __init__(self, policy: GuardrailPolicy) -> None:
        self._policy = policy
        self._text = ""
        self._released = ""
        self._rescan_at = 0

    def push(self, delta: str) -> str:
        """The newly safe text, redacted; empty while it is held back."""
        self._text += delta
        if len(self._text) < self._rescan_at:
            return ""
        scan = scan_output(self._text, self._policy)
        held = scan.settled < len(self._text)
        self._rescan_at = len(self._text) + (_RESCAN_AFTER if held else 0)
        return self._release(scan.releasable())

    @property
    def released_chars(self) -> int:
        """How much redacted text has been let out so far."""
        return len(self._released)

    def finish(self) -> str:
        """The rest of the redacted answer, now that nothing more can come."""
        outcome = check_output(self._text, self._policy, "")
        return self._release("" if outcome.blocked else outcome.text)

    def _release(self, releasable: str) -> str:
        new = releasable[len(self._released) :]
        self._released += new
        return new
