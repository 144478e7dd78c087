"""Reading platform payloads, where any field may be absent, null or of another type."""

from __future__ import annotations

from typing import Any

__all__ = ["as_dict"]


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one, so lookups can be chained safely."""
    return value if isinstance(value, dict) else {}
