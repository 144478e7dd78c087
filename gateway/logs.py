"""Structured JSON log lines: one per delivery on the ingress, one per run on the workers.

Fields are passed as ``extra={"fields": {...}}``; the formatter writes them beside the time,
level, logger and message. Callers never pass secrets, tokens or signatures: the formatter
has no way to tell them apart, so the rule is kept where the fields are chosen.

The ingress writes a line for every delivery, thousands a second, so ``log_fields`` has a
short path for it (as structlog's docs advise for hot loggers): under ``configure()``'s own
handler it renders the line straight from the fields, without a ``LogRecord``, and the lines
of one event-loop tick are written to stderr together. Every other record is written at once,
after any lines still waiting, so the order on stderr is the order of the calls.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

__all__ = ["MAX_BATCHED_LINES", "configure", "JSONFormatter", "JSONLinesHandler", "log_fields", "render"]

# A tick that logs more than this many lines writes them without waiting for its end.
MAX_BATCHED_LINES = 512


def render(
    created: float, level: str, logger: str, message: str, fields: object, exception: str | None = None
) -> str:
    """One JSON line (without its newline): time, level, logger, message, then ``fields``."""
    line: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if isinstance(fields, dict):
        line.update(fields)
    if exception is not None:
        line["exception"] = exception
    return orjson.dumps(line, default=str).decode()


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return render(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            getattr(record, "fields", None),
            exception,
        )


class JSONLinesHandler(logging.StreamHandler[TextIO]):
    """Writes JSON lines to a stream: records at once, ``log_fields`` lines once per loop tick.

    A line waits at most until the end of the current event-loop tick, the next ordinary
    record, or interpreter exit (``logging.shutdown`` flushes every handler). Only a process
    killed outright in the middle of a tick loses what that tick logged.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(JSONFormatter())
        self._waiting: list[str] = []
        self._flush_scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record) + "\n")
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def add_line(self, line: str, loop: asyncio.AbstractEventLoop) -> None:
        """Queue ``line`` to be written with the rest of this loop tick's lines."""
        with self.lock:  # type: ignore[union-attr]  # set by Handler.createLock
            self._waiting.append(line + "\n")
            if len(self._waiting) >= MAX_BATCHED_LINES:
                self._write("")
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_waiting)

    def flush(self) -> None:
        """Write the lines still waiting, then flush the stream."""
        with self.lock:  # type: ignore[union-attr]
            self._write("")

    def _flush_waiting(self) -> None:
        try:
            self.flush()
        except Exception:
            # The stream is gone (closed pipe, full disk): say so the way logging does.
            if logging.raiseExceptions:
                traceback.print_exc(file=sys.__stderr__)

    def _write(self, line: str) -> None:
        self._flush_scheduled = False
        text = "".join(self._waiting) + line
        self._waiting.clear()
        if text:
            self.stream.write(text)
        self.stream.flush()


def log_fields(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """Log one line of ``fields`` through ``logger``, as cheaply as the configuration allows.

    When ``configure()``'s handler is the only one the record would reach, nothing filters it
    and the caller runs in an event loop, the line is rendered from the fields and written at
    the end of the loop tick. Otherwise this is a plain ``logger.log`` call, so handlers and
    filters that an application or a test installs see an ordinary record.
    """
    if not logger.isEnabledFor(level):
        return
    handler = _sole_json_handler(logger, level)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if handler is None or loop is None:
        logger.log(level, "%s", message, extra={"fields": fields})
        return
    line = render(time.time(), logging.getLevelName(level).lower(), logger.name, message, fields)
    handler.add_line(line, loop)


def configure(level: str = "INFO") -> None:
    """Send every log record to stderr as JSON lines, at ``level`` and above."""
    # The JSON lines use none of what logging gathers for every record by default (the
    # caller's file and line, thread, process): skip it, as the logging docs' "Optimization"
    # section describes. It was a fifth of the ack path's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [JSONLinesHandler(sys.stderr)]
    root.setLevel(level)


def _sole_json_handler(logger: logging.Logger, level: int) -> JSONLinesHandler | None:
    """The ``JSONLinesHandler`` that alone would handle ``logger``'s record at ``level``, if any."""
    found: JSONLinesHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, JSONLinesHandler):
                return None
            if handler.filters or level < handler.level:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found
