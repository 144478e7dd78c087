"""Run records and their event streams, as the worker side writes them.

They are shared with the web side (the runs API reads them and its retry writes them), so they
are defined in ``gateway.runs``; this module is their name among the worker's state.
"""

from __future__ import annotations

from gateway.runs import (
    EVENTS_KEPT,
    MAX_EVENTS,
    MAX_FIELD,
    MAX_PROGRESS,
    RUN_TTL,
    TERMINAL,
    Status,
    add_event,
    add_feedback,
    add_progress,
    get_run,
    retention,
    set_retention,
    utcnow,
    write,
)

__all__ = [
    "EVENTS_KEPT",
    "MAX_EVENTS",
    "MAX_FIELD",
    "MAX_PROGRESS",
    "RUN_TTL",
    "TERMINAL",
    "Status",
    "add_event",
    "add_feedback",
    "add_progress",
    "get_run",
    "retention",
    "set_retention",
    "utcnow",
    "write",
]
