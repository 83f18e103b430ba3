"""The dashboard: static HTML, CSS and ES modules under ``static/``, served at ``/dashboard`` on
the API's own origin. No build step and nothing fetched at run time: every number the pages
show comes from the public API (``/v1/analytics/*``, ``/v1/runs``, ``/v1/alerts``, the feed)
with the key the user typed in, so the dashboard can never see more than that key can."""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

__all__ = ["MOUNT", "static_files"]

MOUNT = "/dashboard"
_STATIC = Path(__file__).parent / "static"


def static_files() -> StaticFiles:
    """``index.html`` for the directory itself, so ``/dashboard/`` opens the app."""
    return StaticFiles(directory=_STATIC, html=True)
