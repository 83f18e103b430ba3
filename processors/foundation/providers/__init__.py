"""Provider adapters behind one small interface (``Provider``): OpenAI-compatible endpoints,
Anthropic, and the simulated provider; plus token counting and pricing for what they return."""

from processors.foundation.providers.anthropic import AnthropicProvider
from processors.foundation.providers.base import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    FailureKind,
    Provider,
    ProviderError,
    Usage,
)
from processors.foundation.providers.factory import MissingApiKey, build_provider
from processors.foundation.providers.openai_compat import OpenAICompatProvider
from processors.foundation.providers.pricing import cost_usd
from processors.foundation.providers.simulated import SimulatedProvider
from processors.foundation.providers.tokens import (
    count_text_tokens,
    count_tokens,
    estimated_usage,
)

__all__ = [
    "AnthropicProvider",
    "ChatDelta",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "FailureKind",
    "MissingApiKey",
    "OpenAICompatProvider",
    "Provider",
    "ProviderError",
    "SimulatedProvider",
    "Usage",
    "build_provider",
    "cost_usd",
    "count_text_tokens",
    "count_tokens",
    "estimated_usage",
]
