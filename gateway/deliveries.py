"""The recent deliveries the ingress saw, refused ones included, kept in Redis for ``GET /api/deliveries``.

Every delivery's log line also goes to a capped Redis Stream (``keys.DELIVERIES``, the newest
``KEPT`` entries): platform, event, action, delivery and job ids, outcome, status, reason and
duration — never a body, a secret or a signature. Recording never slows the acknowledgement:
``DeliveryLog.record`` only queues the line, and the lines of one event-loop tick are written
together in one pipelined round trip, after the answers went out. When Redis cannot take them
they are dropped (and counted): the log line on stderr stays the record of truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from rq.utils import as_text

from gateway import keys

__all__ = ["KEPT", "MAX_WAITING", "DeliveryLog", "read_deliveries"]

logger = logging.getLogger("gateway.deliveries")

KEPT = 10_000
MAX_WAITING = 5_000  # lines waiting for Redis; past this, new ones are dropped
_FIELDS = (
    "platform",
    "event",
    "action",
    "delivery_id",
    "job_id",
    "outcome",
    "status",
    "reason",
    "duration_ms",
    "retry_num",
    "retry_reason",
)


class DeliveryLog:
    """Writes delivery lines to the capped stream, a loop tick's worth per round trip."""

    def __init__(self, connection: aioredis.Redis, *, kept: int = KEPT) -> None:
        self._redis = connection
        self._kept = kept
        self._waiting: list[bytes] = []
        self._flush: asyncio.Task[None] | None = None
        self.dropped = 0

    def record(self, fields: Mapping[str, Any]) -> None:
        """Queue one delivery's line (the fields of ``_FIELDS`` it has) and return at once."""
        if len(self._waiting) >= MAX_WAITING:
            self.dropped += 1
            return
        line = {name: fields[name] for name in _FIELDS if fields.get(name) is not None}
        self._waiting.append(orjson.dumps(line))
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._waiting:
            lines, self._waiting = self._waiting, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for line in lines:
                        pipe.xadd(keys.DELIVERIES, {"d": line}, maxlen=self._kept, approximate=True)
                    await pipe.execute()
            except (TimeoutError, redis.RedisError, OSError) as exc:
                self.dropped += len(lines)
                logger.warning(
                    "delivery log not written for %d deliveries: %s", len(lines), type(exc).__name__
                )

    async def aclose(self) -> None:
        """Write what is still waiting."""
        if self._flush is not None:
            await asyncio.gather(self._flush, return_exceptions=True)


def read_deliveries(
    connection: redis.Redis, *, limit: int, platform: str | None = None, outcome: str | None = None
) -> list[dict[str, Any]]:
    """The newest deliveries first, at most ``limit``, filtered by platform and outcome.

    Each carries ``id`` (its stream id) and ``at`` (when the ingress answered, ISO-8601 UTC).
    """
    found: list[dict[str, Any]] = []
    top = "+"
    while len(found) < limit:
        batch: list[Any] = connection.xrevrange(keys.DELIVERIES, max=top, min="-", count=500) or []
        if not batch:
            break
        for entry_id, fields in batch:
            line = _decode(as_text(entry_id), fields or {})
            if (platform is None or line.get("platform") == platform) and (
                outcome is None or line.get("outcome") == outcome
            ):
                found.append(line)
                if len(found) == limit:
                    break
        top = f"({as_text(batch[-1][0])}"
    return found


def _decode(entry_id: str, fields: Mapping[Any, Any]) -> dict[str, Any]:
    try:
        line = orjson.loads(fields.get(b"d") or fields.get("d") or b"{}")
    except orjson.JSONDecodeError:
        line = {}
    milliseconds = int(entry_id.split("-", 1)[0])
    at = datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="milliseconds")
    return {"id": entry_id, "at": at, **(line if isinstance(line, dict) else {})}
