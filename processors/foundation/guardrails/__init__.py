"""Layer 1's guardrails, all pure: PII and secret detection, a prompt-injection score, and a
``GuardrailPolicy`` applied to a request (input) and to the answer (output)."""

from processors.foundation.guardrails.injection import InjectionVerdict, score_injection
from processors.foundation.guardrails.pii import PiiFinding, find_pii
from processors.foundation.guardrails.policy import (
    GuardrailOutcome,
    Stage,
    Violation,
    check_input,
    check_output,
)

__all__ = [
    "GuardrailOutcome",
    "InjectionVerdict",
    "PiiFinding",
    "Stage",
    "Violation",
    "check_input",
    "check_output",
    "find_pii",
    "score_injection",
]
