"""``python -m api``: serve the API on ``API_GATEWAY_PORT`` (default 8080), loopback unless
``API_HOST`` says otherwise. ``python -m api new-key --tenant T`` makes a key and prints the
entry for ``configs/api.yaml`` (which stores only its hash)."""

from __future__ import annotations

import argparse
import json

import uvicorn

from api.app import create_app
from api.auth import hash_key, new_key
from api.settings import ApiSettings
from streams.log_format import configure_json_logging


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api")
    commands = parser.add_subparsers(dest="command")
    key = commands.add_parser("new-key", help="make a key for a tenant")
    key.add_argument("--tenant", required=True)
    key.add_argument("--id", help="names the key in logs and metrics (default: the tenant)")
    args = parser.parse_args()
    if args.command == "new-key":
        secret = new_key()
        entry = {"id": args.id or args.tenant, "tenant": args.tenant, "sha256": hash_key(secret)}
        print(f"key (shown once, give it to the client): {secret}")
        print(f"configs/api.yaml, under auth.keys:\n  - {json.dumps(entry)}")
        return
    settings = ApiSettings.from_env()
    configure_json_logging(settings.streams.log_level)  # uvicorn's loggers too (log_config=None)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
