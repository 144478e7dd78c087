"""Job functions for queue tests: a stock RQ worker runs them from jobs the gateway queued."""

from __future__ import annotations

from typing import Any


def echo_event(envelope: dict[str, Any]) -> str:
    """Return what a handler would dispatch on, proving the envelope arrived intact."""
    return f"{envelope['platform']}:{envelope['event']}:{envelope['payload']['event']['text']}"
