"""Layer 5, presentation: the HTTP and WebSocket edge. It produces commands and reads
projections; it never calls a provider itself."""

from api.app import create_app

__all__ = ["create_app"]
