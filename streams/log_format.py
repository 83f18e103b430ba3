"""Structured JSON logs: one object a line, with ``correlation_id`` when a message is in hand."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

__all__ = ["configure_json_logging"]

_CONTEXT_FIELDS = ("correlation_id", "message_id", "message_type", "topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in _CONTEXT_FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_LIBRARY_REQUEST_LOGGERS = ("httpx", "httpcore")


def configure_json_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in _LIBRARY_REQUEST_LOGGERS:  # a line per HTTP request says nothing to a person
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
