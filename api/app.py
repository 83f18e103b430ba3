"""The API process: routes, the edge middleware, the error handlers, and the services that live
as long as the process (built at start-up, closed at shutdown)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import (
    admin,
    alerts,
    analytics,
    chat,
    collections,
    dashboard,
    datasets,
    eval_runs,
    health,
    live,
    runs,
    workflows,
)
from api.config import ApiConfig, load_api_config
from api.errors import install_error_handlers
from api.middleware import EdgeMiddleware
from api.services import running_services
from api.settings import ApiSettings

__all__ = ["create_app"]

_DESCRIPTION = """OpenAI-compatible chat completions, workflow submission, run queries, tenant
analytics, alerts and a live WebSocket feed (`/v1/ws`, see docs/API.md), over the platform's event
log; a dashboard on the same API at `/dashboard` (docs/DASHBOARD.md).
Every error is `{"error": {"code", "message", "retryable", "correlation_id"}}`."""


def create_app(settings: ApiSettings | None = None, config: ApiConfig | None = None) -> FastAPI:
    """``config`` is read from ``settings.config_path`` unless the caller already read it."""
    settings = settings or ApiSettings.from_env()
    # fail at start-up, naming file and line
    config = config or load_api_config(settings.config_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings, config) as services:
            app.state.services = services
            yield

    app = FastAPI(
        title="LLM reliability platform",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    routers = (chat, workflows, collections, runs, datasets, eval_runs, analytics, alerts, live)
    for module in (*routers, admin, health):
        app.include_router(module.router)
    app.mount(dashboard.MOUNT, dashboard.static_files(), name="dashboard")
    install_error_handlers(app)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=config.limits.max_body_bytes,
        admitted_paths=frozenset({chat.ROUTE}),
    )
    return app
