"""Managed keys as a fold of their events, and who may manage them."""

from __future__ import annotations

import pytest

from api.auth import LOCAL_DEV_KEY, KeyRing, Principal, hash_key
from api.config import ApiConfig, RateLimits
from api.errors import ApiError
from api.keys import KeyTable, created_event, revoked_event
from streams.envelope import WriterIdentity

WRITER = WriterIdentity("api", 5, "dev")


def test_a_created_key_is_found_by_its_hash_until_it_is_revoked() -> None:
    table = KeyTable()
    event, secret = created_event(WRITER, "acme", "ci", RateLimits(rpm=5, tpm=100), "ops")
    table.apply(event)
    key = table.active_by_hash(hash_key(secret))
    assert key is not None and (key.tenant, key.name, key.created_by) == ("acme", "ci", "ops")
    assert key.limits == RateLimits(rpm=5, tpm=100)
    assert secret not in str(event.payload) and secret.startswith(key.prefix)
    table.apply(revoked_event(WRITER, key, "ops"))
    assert table.active_by_hash(hash_key(secret)) is None
    revoked = table.get(key.key_id)
    assert revoked is not None and not revoked.active and revoked.revoked_by == "ops"


def test_replayed_events_give_the_same_table_and_a_lone_revocation_gives_no_key() -> None:
    event, secret = created_event(WRITER, "acme", None, None, "cli")
    once, twice = KeyTable(), KeyTable()
    once.apply(event)
    for _ in range(2):
        twice.apply(event)
    assert once.keys() == twice.keys()
    key = once.get(event.correlation_id)
    assert key is not None and key.limits is None
    compacted = KeyTable()  # compaction kept only the key's last event
    compacted.apply(revoked_event(WRITER, key, "cli"))
    assert compacted.keys() == [] and compacted.active_by_hash(hash_key(secret)) is None


def config(**auth: object) -> ApiConfig:
    return ApiConfig.model_validate({"auth": auth})


def test_only_admin_keys_may_manage_keys() -> None:
    admin, tenant_key = "sk-admin-secret", "sk-tenant-secret"
    ring = KeyRing(
        config(
            keys=[{"id": "t", "tenant": "acme", "sha256": hash_key(tenant_key)}],
            admin_keys=[{"id": "ops", "sha256": hash_key(admin)}],
        ),
        dev_mode=False,
    )
    assert ring.admin(f"Bearer {admin}") == "ops"
    with pytest.raises(ApiError) as missing:
        ring.admin(None)
    with pytest.raises(ApiError) as tenant_only:
        ring.admin(f"Bearer {tenant_key}")
    assert (missing.value.code, tenant_only.value.code) == ("UNAUTHENTICATED", "FORBIDDEN")
    with pytest.raises(ApiError):
        ring.authenticate(f"Bearer {admin}")  # an admin key carries no traffic


def test_managed_keys_authenticate_beside_the_configured_ones() -> None:
    managed = Principal("key_1", "acme", RateLimits())
    ring = KeyRing(
        config(),
        dev_mode=False,
        managed=lambda digest: managed if digest == hash_key("m") else None,
    )
    assert ring.authenticate("Bearer m") == managed
    with pytest.raises(ApiError):
        ring.authenticate("Bearer other")


def test_the_local_dev_key_may_manage_keys_only_where_it_works_at_all() -> None:
    assert KeyRing(config(), dev_mode=False, local_dev=True).admin(f"Bearer {LOCAL_DEV_KEY}")
    with pytest.raises(ApiError):
        KeyRing(config(), dev_mode=False).admin(f"Bearer {LOCAL_DEV_KEY}")
