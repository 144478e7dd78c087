"""Loggers bound to a run: every line carries platform, delivery_id, job_id and attempt.

Formatting is ``gateway.logs`` (JSON lines on stderr); this only merges bound fields with the
per-call ``extra={"fields": {...}}``. Never bind secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any, cast

__all__ = ["bind", "BoundLogger"]


class BoundLogger(logging.LoggerAdapter[logging.Logger]):
    """A ``LoggerAdapter`` whose bound ``fields`` are merged into each call's ``fields``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the bound fields under the call's own (the call wins on a clash)."""
        bound: dict[str, Any] = dict(cast(Mapping[str, Any], (self.extra or {}).get("fields") or {}))
        extra = dict(kwargs.get("extra") or {})
        extra["fields"] = {**bound, **(extra.get("fields") or {})}
        kwargs["extra"] = extra
        return msg, kwargs


def bind(logger: logging.Logger, **fields: object) -> BoundLogger:
    """``logger`` with ``fields`` added to every line."""
    return BoundLogger(logger, {"fields": fields})
