"""``python -m api keys create|list|revoke``: the admin API's key management from a shell, for
whoever can reach the broker (``KAFKA_BOOTSTRAP_SERVERS``, default ``./dev up``'s local
broker). It writes the same events the admin API writes, so every replica follows it."""

from __future__ import annotations

import argparse
import json
import sys

from api.config import RateLimits
from api.keys import CREATED, KeyFollower, ManagedKey, created_event, revoked_event
from streams.envelope import Envelope, WriterIdentity
from streams.producer import EnvelopeProducer
from streams.settings import Settings
from streams.wiring import serde_for, topics_for

__all__ = ["add_key_commands", "run_key_command"]

_LOCAL_BROKER = "127.0.0.1:9092"  # ./dev up's
_TIMEOUT_S = 15.0
_CLI = "cli"


def add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys (no restart)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new key for a tenant; printed once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", help="what the key is for")
    create.add_argument("--rpm", type=int, help="requests per minute (default: the API's)")
    create.add_argument("--tpm", type=int, help="tokens per minute (default: the API's)")
    listing = actions.add_parser("list", help="every key, revoked ones too (never secrets)")
    listing.add_argument("--tenant")
    revoke = actions.add_parser("revoke", help="refused by every replica within a second")
    revoke.add_argument("key_id")


def run_key_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    bootstrap = settings.kafka_bootstrap_servers or _LOCAL_BROKER
    serde, topics = serde_for(settings), topics_for(settings)
    follower = KeyFollower(bootstrap, serde, topics.topic_for(CREATED))
    writer = WriterIdentity(_CLI, 5, settings.env)
    if args.action == "create":
        limits = None
        if args.rpm or args.tpm:
            limits = RateLimits(**{k: v for k, v in (("rpm", args.rpm), ("tpm", args.tpm)) if v})
        event, secret = created_event(writer, args.tenant, args.name, limits, _CLI)
        _send(EnvelopeProducer(bootstrap, serde, topics), event)
        print(f"key (shown once, give it to the client): {secret}")
        print(json.dumps(_row(_created(event, follower))))
        return 0
    table = follower.read_all(_TIMEOUT_S)
    if args.action == "list":
        for key in table.keys():
            if args.tenant is None or key.tenant == args.tenant:
                print(json.dumps(_row(key)))
        return 0
    found = table.get(args.key_id)
    if found is None:
        print(f"no key {args.key_id!r}", file=sys.stderr)
        return 1
    if found.active:
        _send(EnvelopeProducer(bootstrap, serde, topics), revoked_event(writer, found, _CLI))
    print(f"revoked {found.key_id} (tenant {found.tenant})")
    return 0


def _send(producer: EnvelopeProducer, event: Envelope) -> None:
    producer.send([event])
    left = producer.kafka.flush(_TIMEOUT_S)
    if left:
        raise SystemExit(f"the broker did not acknowledge the key event within {_TIMEOUT_S:.0f}s")


def _created(event: Envelope, follower: KeyFollower) -> ManagedKey:
    key = follower.read_all(_TIMEOUT_S).get(event.correlation_id)
    if key is None:
        raise SystemExit("the key event was acknowledged but not read back")
    return key


def _row(key: ManagedKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
