"""The last recovery sweep per platform, as the workers record it, and how it is read back.

Workers sweep GitHub's failed webhook deliveries and Stripe's undelivered events
(``handlers.recover``) and record the last sweep of each platform in one hash,
``keys.last_sweep(platform)``. ``/health`` (which reads only Redis) and ``gateway check`` show
it through ``decode``, so both read the same fields:

- ``state``: ``running``, ``complete`` (every source walked back to where it had to), or
  ``incomplete`` (stopped early: rate limited, an error, the lock lost; the next sweep resumes);
- ``started_at``, ``finished_at``: ISO-8601 UTC; ``by``: the worker (or ``cli``) that swept;
- ``found``: missed deliveries the gateway had not claimed; ``requeued``: those redelivered
  (GitHub) or queued (Stripe); ``errors``: how many calls failed, ``error``: the last reason;
- ``sources``: what was swept (``app``, ``acme/api:12``, ``v1 events``, ``v2 events``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from gateway import keys

__all__ = ["COUNTS", "STATES", "decode", "last_sweeps"]

STATES = ("running", "complete", "incomplete")
COUNTS = ("found", "requeued", "errors")


def decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    """The record as JSON-ready values (counts as integers); empty when never swept."""
    record: dict[str, Any] = {_text(name): _text(value) for name, value in raw.items()}
    for name in COUNTS:
        if name in record:
            record[name] = int(record[name])
    return record


async def last_sweeps(client: aioredis.Redis, platforms: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The last sweep of each of ``platforms`` that was ever swept (one round trip)."""
    names = list(platforms)
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.last_sweep(name))
        raws = await pipe.execute()
    found = {name: decode(raw) for name, raw in zip(names, raws, strict=True)}
    return {name: record for name, record in found.items() if record}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
