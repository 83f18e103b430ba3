"""Keys managed without editing YAML, on two API replicas and the CLI: a key created through
one replica's admin API works there at once and on the other within seconds, a key revoked by
the CLI is refused by both within seconds, a replica started later knows every key before it
reports ready, only hashes reach the topic, and only admin keys may manage keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from api.auth import hash_key
from schemas import default_catalog
from streams.serde import AvroSerde, SingleObjectFraming
from tests.integration.kafka_reading import TopicReader
from tests.integration.test_api_support import REPO, ApiProcess, Stack, running_stack

SERDE = AvroSerde(default_catalog(), SingleObjectFraming(default_catalog()))
ADMIN = "sk-admin-test-0123456789abcdef"
WITHIN_S = 10.0  # "within seconds": a bound on the polls below, not a sleep


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("keys")
    with running_stack(bootstrap, redis_url, workdir, admins={"ops": ADMIN}) as running:
        running.start_api().wait_ready()
        yield running


def as_admin(key: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def status_with(api: ApiProcess, key: str) -> int:
    """An authenticated read: 404 (no such run) once the key is known, 401 while it is not."""
    response = httpx.get(f"{api.url}/v1/runs/req_none", headers=as_admin(key), timeout=5)
    return response.status_code


def until_status(api: ApiProcess, key: str, status: int) -> None:
    deadline = time.monotonic() + WITHIN_S
    while (seen := status_with(api, key)) != status:
        assert time.monotonic() < deadline, f"{api.url} still answers {seen}, not {status}"
        time.sleep(0.05)  # poll interval of a bounded wait


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "TOPIC_PREFIX": stack.prefix}
    return subprocess.run(
        [sys.executable, "-m", "api", "keys", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_key_created_on_one_replica_works_on_every_replica_until_the_cli_revokes_it(
    stack: Stack,
) -> None:
    first, second = stack.apis[:2]
    body = {"tenant": "acme", "name": "ci", "limits": {"rpm": 50, "tpm": 5000}}
    created = httpx.post(f"{first.url}/v1/admin/keys", json=body, headers=as_admin(), timeout=10)
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert created.json()["tenant"] == "acme" and key.startswith(created.json()["prefix"])
    assert status_with(first, key) == 404  # read back before the answer: works here at once
    until_status(second, key, 404)

    revoked = cli(stack, "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    until_status(first, key, 401)
    until_status(second, key, 401)
    listed = httpx.get(f"{second.url}/v1/admin/keys?tenant=acme", headers=as_admin(), timeout=5)
    [view] = [k for k in listed.json()["keys"] if k["key_id"] == key_id]
    assert view["revoked_at"] is not None and view["revoked_by"] == "cli"
    assert "sha256" not in view and "key" not in view


def test_a_key_created_by_the_cli_is_known_to_a_replica_started_later(stack: Stack) -> None:
    made = cli(stack, "create", "--tenant", "globex", "--name", "batch")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split("shown once, give it to the client): ")[1].split()[0]
    row = json.loads(made.stdout.strip().splitlines()[-1])
    late = stack.start_api()
    late.wait_ready()
    assert status_with(late, key) == 404
    listed = cli(stack, "list", "--tenant", "globex")
    assert row["key_id"] in listed.stdout and key not in listed.stdout


def test_only_hashes_reach_the_topic(stack: Stack) -> None:
    created = httpx.post(
        f"{stack.api.url}/v1/admin/keys", json={"tenant": "acme"}, headers=as_admin(), timeout=10
    ).json()
    reader = TopicReader(stack.bootstrap, stack.topics.topic_for("auth.key.created"), SERDE)
    reader.poll_until(
        lambda r: any(e.correlation_id == created["key_id"] for e in r.envelopes), 30, "the event"
    )
    [event] = [e for e in reader.envelopes if e.correlation_id == created["key_id"]]
    assert event.payload["sha256"] == hash_key(created["key"])
    assert all(created["key"] not in m.value().decode("latin-1") for m in reader.messages)


def test_the_admin_api_needs_an_admin_key(stack: Stack) -> None:
    url = f"{stack.api.url}/v1/admin/keys"
    tenant_key = stack.tenants["a"].key
    assert httpx.get(url, timeout=5).status_code == 401
    forbidden = httpx.get(url, headers=as_admin(tenant_key), timeout=5)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "FORBIDDEN"
    bad = httpx.post(url, json={"tenant": "no spaces"}, headers=as_admin(), timeout=5)
    assert bad.status_code == 422
    missing = httpx.delete(f"{url}/key_nope", headers=as_admin(), timeout=5)
    assert missing.status_code == 404
