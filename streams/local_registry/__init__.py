"""A real local Confluent-compatible schema registry (Apicurio, from Maven Central; no Docker)."""

from streams.local_registry.registry import (
    APICURIO_VERSION,
    LocalRegistryError,
    LocalSchemaRegistry,
    ensure_registry_app,
    registry_home,
)

__all__ = [
    "APICURIO_VERSION",
    "LocalRegistryError",
    "LocalSchemaRegistry",
    "ensure_registry_app",
    "registry_home",
]
