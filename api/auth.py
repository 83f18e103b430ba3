"""Who is calling: a Bearer key, looked up by its SHA-256 (the config never holds a key), names
the tenant every read and write of the request is scoped to."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from api.config import ApiConfig, RateLimits
from api.errors import ApiError, HttpErrorCode

__all__ = ["KeyRing", "Principal", "hash_key", "new_key"]

_KEY_PREFIX = "sk-plat-"


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    limits: RateLimits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """256 random bits: hashing without a salt is safe for keys this long (no dictionary)."""
    return _KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """Keys from ``configs/api.yaml``. In dev mode a request *without* a key is the dev
    tenant's; a key that is presented must still be valid, so a typo never goes unnoticed."""

    def __init__(self, config: ApiConfig, dev_mode: bool) -> None:
        self._by_hash = {
            key.sha256: Principal(key.id, key.tenant, key.limits or config.limits.default)
            for key in config.auth.keys
        }
        self._dev = (
            Principal("dev", config.auth.dev.tenant, config.limits.default) if dev_mode else None
        )

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            if self._dev is not None:
                return self._dev
            raise _unauthenticated("missing Authorization: Bearer <key>")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthenticated("expected Authorization: Bearer <key>")
        principal = self._by_hash.get(hash_key(key.strip()))
        if principal is None:
            raise _unauthenticated("invalid API key")
        return principal


def _unauthenticated(message: str) -> ApiError:
    return ApiError(HttpErrorCode.UNAUTHENTICATED, message, headers={"WWW-Authenticate": "Bearer"})
