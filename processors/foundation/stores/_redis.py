"""What every store's Redis keys share: the namespace and how TTLs are written. The client and
the translation of transport failures (``StoreUnavailable``) are ``streams.redis_state``'s."""

from __future__ import annotations

import math

__all__ = ["DEFAULT_NAMESPACE", "ttl_ms"]

DEFAULT_NAMESPACE = "llmrp"


def ttl_ms(seconds: float) -> int:
    """A Redis PX/PEXPIRE argument: whole milliseconds, never below one."""
    return max(1, math.ceil(seconds * 1000))
