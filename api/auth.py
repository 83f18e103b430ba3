"""Who is calling: a Bearer key, looked up by its SHA-256 (the config never holds a key), names
the tenant every read and write of the request is scoped to."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from api.config import ApiConfig, RateLimits
from api.errors import ApiError, HttpErrorCode

__all__ = [
    "LOCAL_DEV_KEY",
    "KeyRing",
    "ManagedLookup",
    "Principal",
    "hash_key",
    "local_dev_key_allowed",
    "new_key",
]

_KEY_PREFIX = "sk-plat-"
LOCAL_DEV_KEY = "local-dev"


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


def local_dev_key_allowed(config: ApiConfig, host: str) -> bool:
    """The key ``local-dev`` works only while no key (nor admin key) is configured and the API
    listens on a loopback address: a first call needs no file edited, and nothing else can
    reach it."""
    if config.auth.keys or config.auth.admin_keys:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ManagedLookup = Callable[[str], "Principal | None"]
"""A key's principal by its SHA-256 among the keys managed through the admin API or CLI."""


class KeyRing:
    """Keys from ``configs/api.yaml`` and the managed keys (``managed``, see ``api/keys.py``).
    In dev mode a request *without* a key is the dev tenant's; a key that is presented must
    still be valid, so a typo never goes unnoticed. With ``local_dev`` the key ``local-dev`` is
    the dev tenant's too, and may manage keys (``local_dev_key_allowed`` says when)."""

    def __init__(
        self,
        config: ApiConfig,
        dev_mode: bool,
        local_dev: bool = False,
        managed: ManagedLookup | None = None,
    ) -> None:
        self._by_hash = {
            key.sha256: Principal(key.id, key.tenant, key.limits or config.limits.default)
            for key in config.auth.keys
        }
        self._admins = {key.sha256: key.id for key in config.auth.admin_keys}
        self._managed = managed
        dev = Principal("dev", config.auth.dev.tenant, config.limits.default)
        self._dev = dev if dev_mode else None
        if local_dev:
            self._by_hash[hash_key(LOCAL_DEV_KEY)] = Principal(
                LOCAL_DEV_KEY, dev.tenant, dev.limits
            )
            self._admins[hash_key(LOCAL_DEV_KEY)] = LOCAL_DEV_KEY

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            if self._dev is not None:
                return self._dev
            raise _unauthenticated("missing Authorization: Bearer <key>")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthenticated("expected Authorization: Bearer <key>")
        digest = hash_key(key.strip())
        principal = self._by_hash.get(digest)
        if principal is None and self._managed is not None:
            principal = self._managed(digest)
        if principal is None:
            raise _unauthenticated("invalid API key")
        return principal

    def admin(self, authorization: str | None) -> str:
        """The admin key's id; 401 without a key, 403 for a key that is not an admin key."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthenticated("expected Authorization: Bearer <admin key>")
        admin = self._admins.get(hash_key(key.strip()))
        if admin is None:
            raise ApiError(HttpErrorCode.FORBIDDEN, "an admin key (auth.admin_keys) is required")
        return admin


def _unauthenticated(message: str) -> ApiError:
    return ApiError(HttpErrorCode.UNAUTHENTICATED, message, headers={"WWW-Authenticate": "Bearer"})
