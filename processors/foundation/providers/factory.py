"""One place that turns a ``providers.yaml`` entry into a live adapter."""

from __future__ import annotations

import os
from collections.abc import Mapping

from processors.foundation.config import ProviderSettings
from processors.foundation.providers.anthropic import AnthropicProvider
from processors.foundation.providers.base import Provider
from processors.foundation.providers.openai_compat import OpenAICompatProvider
from processors.foundation.providers.simulated import SimulatedProvider

__all__ = ["MissingApiKey", "build_provider"]


class MissingApiKey(LookupError):
    """The config names a key variable that the environment lacks; says which, never a value."""


def build_provider(
    name: str, settings: ProviderSettings, environ: Mapping[str, str] = os.environ
) -> Provider:
    api_key = None
    if settings.api_key_env:
        api_key = environ.get(settings.api_key_env)
        if not api_key:
            raise MissingApiKey(
                f"provider {name!r} needs an API key in the environment variable "
                f"{settings.api_key_env}, which is not set"
            )
    match settings.kind:
        case "openai":
            return OpenAICompatProvider(name, settings, api_key)
        case "anthropic":
            return AnthropicProvider(name, settings, api_key)
        case "simulated":
            return SimulatedProvider(name, settings.simulation)
