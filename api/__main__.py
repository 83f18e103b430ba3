"""``python -m api``: serve the API on ``API_GATEWAY_PORT`` (default 8080), loopback unless
``API_HOST`` says otherwise. ``python -m api keys create|list|revoke`` manages keys every
replica follows (``api/keys_cli.py``); ``python -m api new-key --tenant T`` makes a key and
prints the entry for ``configs/api.yaml`` (which stores only its hash)."""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn

from api.app import create_app
from api.auth import LOCAL_DEV_KEY, hash_key, local_dev_key_allowed, new_key
from api.config import ApiConfig, load_api_config
from api.keys_cli import add_key_commands, run_key_command
from api.settings import ApiSettings
from streams.log_format import configure_json_logging
from streams.tracing import install_tracer_provider


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api")
    commands = parser.add_subparsers(dest="command")
    key = commands.add_parser("new-key", help="make a key for a tenant")
    key.add_argument("--tenant", required=True)
    key.add_argument("--id", help="names the key in logs and metrics (default: the tenant)")
    add_key_commands(commands)
    args = parser.parse_args()
    if args.command == "keys":
        sys.exit(run_key_command(args))
    if args.command == "new-key":
        secret = new_key()
        entry = {"id": args.id or args.tenant, "tenant": args.tenant, "sha256": hash_key(secret)}
        print(f"key (shown once, give it to the client): {secret}")
        print(f"configs/api.yaml, under auth.keys:\n  - {json.dumps(entry)}")
        return
    settings = ApiSettings.from_env()
    configure_json_logging(settings.streams.log_level)  # uvicorn's loggers too (log_config=None)
    install_tracer_provider("api")
    config = load_api_config(settings.config_path)
    print(_banner(settings, config), file=sys.stderr, flush=True)
    app = create_app(settings, config)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


def _banner(settings: ApiSettings, config: ApiConfig) -> str:
    """Where the API listens and how a first call authenticates, for the person who started it."""
    url = f"http://{settings.host}:{settings.port}"
    lines = [
        f"API: {url} (OpenAI-compatible: {url}/v1/chat/completions, live feed {url}/v1/ws, "
        f"metrics {url}/metrics, dashboard {url}/dashboard/)"
    ]
    if settings.auth_mode == "dev":
        lines.append("auth: API_AUTH_MODE=dev, requests without a key are the dev tenant's")
    elif local_dev_key_allowed(config, settings.host):
        lines.append(
            f"auth: no keys in {settings.config_path.name}; on this loopback address the key "
            f"'{LOCAL_DEV_KEY}' is the dev tenant's (curl -H 'Authorization: Bearer "
            f"{LOCAL_DEV_KEY}' ...). Configure keys before listening on another address."
        )
    elif not config.auth.keys:
        lines.append(f"auth: no keys in {settings.config_path.name}: every call is refused (401)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
