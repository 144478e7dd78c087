"""Structured JSON log lines: one per delivery on the ingress, one per run on the workers.

Fields are passed as ``extra={"fields": {...}}``; the formatter writes them beside the time,
level, logger and message. Callers never pass secrets, tokens or signatures: the formatter
has no way to tell them apart, so the rule is kept where the fields are chosen.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "INFO") -> None:
    """Send every log record to stderr as JSON lines, at ``level`` and above."""
    # The JSON lines use none of what logging gathers for every record by default (the
    # caller's file and line, thread, process): skip it, as the logging docs' "Optimization"
    # section describes. It was a fifth of the ack path's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
