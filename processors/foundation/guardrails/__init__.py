"""Layer 1's guardrails, all pure: PII and secret detection, a prompt-injection score, and a
``GuardrailPolicy`` applied to a request (input) and to the answer (output), whole or as it
streams."""

from processors.foundation.guardrails.injection import InjectionVerdict, score_injection
from processors.foundation.guardrails.pii import PiiFinding, find_pii, settled_length
from processors.foundation.guardrails.policy import (
    GuardrailOutcome,
    OutputScan,
    Stage,
    Violation,
    check_input,
    check_output,
    scan_output,
)
from processors.foundation.guardrails.streaming import StreamGuard

__all__ = [
    "GuardrailOutcome",
    "InjectionVerdict",
    "OutputScan",
    "PiiFinding",
    "Stage",
    "StreamGuard",
    "Violation",
    "check_input",
    "check_output",
    "find_pii",
    "scan_output",
    "score_injection",
    "settled_length",
]
