"""What a call cost, from the configured price list and the tokens used."""

from __future__ import annotations

from processors.foundation.config import ModelPrice
from processors.foundation.providers.base import Usage

__all__ = ["cost_usd"]

_PER_MILLION = 1_000_000


def cost_usd(price: ModelPrice | None, usage: Usage) -> float:
    """USD for ``usage`` at ``price``; 0 for a model with no configured price."""
    if price is None:
        return 0.0
    return (
        usage.prompt_tokens * price.input_usd_per_mtok
        + usage.completion_tokens * price.output_usd_per_mtok
    ) / _PER_MILLION
