"""Config that follows its files: edits take effect without a restart, broken edits do not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from processors.foundation.config import FoundationConfig, load_foundation_config
from streams.config import ConfigError

__all__ = ["LiveConfig"]

log = logging.getLogger(__name__)
_FILES = ("providers.yaml", "routing.yaml", "guardrails.yaml", "budgets.yaml")


class LiveConfig:
    """The newest valid config of a directory. Files are checked at most every
    ``check_interval_s``; an invalid edit is logged with file, line and field, and the last good
    config stays in force (``last_error`` tells what is wrong)."""

    def __init__(
        self,
        directory: Path,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._interval = check_interval_s
        self._clock = clock
        self._signature = self._read_signature()
        self._config = load_foundation_config(directory)
        self._checked_at = clock()
        self.version = 1
        self.last_error: ConfigError | None = None

    def current(self) -> FoundationConfig:
        now = self._clock()
        if now - self._checked_at >= self._interval:
            self._checked_at = now
            self._reload_if_changed()
        return self._config

    def _reload_if_changed(self) -> None:
        signature = self._read_signature()
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self._config = load_foundation_config(self._directory)
        except ConfigError as exc:
            self.last_error = exc
            log.error("config change rejected, keeping version %d: %s", self.version, exc)
            return
        self.last_error = None
        self.version += 1
        log.info("config reloaded as version %d", self.version)

    def _read_signature(self) -> tuple[tuple[str, int, int], ...]:
        stats = [(name, (self._directory / name).stat()) for name in _FILES]
        return tuple((name, stat.st_mtime_ns, stat.st_size) for name, stat in stats)
