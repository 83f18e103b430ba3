"""``python -m api``: serve the API on ``API_GATEWAY_PORT`` (default 8080), loopback unless
``API_HOST`` says otherwise."""

from __future__ import annotations

import os

import uvicorn

from api.app import create_app


def main() -> None:
    uvicorn.run(
        create_app(),
        host=os.environ.get("API_HOST", "127.0.0.1"),
        port=int(os.environ.get("API_GATEWAY_PORT", "8080")),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
    )


if __name__ == "__main__":
    main()
