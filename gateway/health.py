"""What the gateway can tell about itself from Redis: the queue, the runs, the workers, the model,
and each platform's last recovery sweep (``gateway.recovery``).

``read_figures`` gathers it in one round trip (a pipeline) for ``GET /health`` and ``GET /metrics``.
The web side only reads: workers write their lease and RQ heartbeat, and the worker that probed
the model server last writes ``keys.MODEL_HEALTH`` (short-lived, so a stale answer disappears
rather than lying). RQ's own keys (queue, registries, worker hashes) are read as RQ names them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from rq.defaults import RQ_KEY_PREFIX

from gateway import keys
from gateway.recovery import last_sweeps

__all__ = ["Figures", "WorkerFigures", "read_figures"]


@dataclass(frozen=True)
class WorkerFigures:
    """The runtime workers whose lease is alive, and the newest heartbeat among them."""

    alive: int
    registered: int
    last_heartbeat: str | None
    last_heartbeat_age: float | None


@dataclass(frozen=True)
class Figures:
    """One snapshot of the queue, the run registries, the workers and the model server."""

    queued: int
    oldest_queued_age: float | None
    running: int
    retrying: int
    failed: int
    workers: WorkerFigures
    model: dict[str, Any] | None
    recovery: dict[str, dict[str, Any]]

    def as_health(self) -> dict[str, Any]:
        """The JSON ``/health`` shows (beside its status and the platforms)."""
        return {
            "queued": self.queued,
            "oldest_queued_age": _round(self.oldest_queued_age),
            "running": self.running,
            "retrying": self.retrying,
            "failed": self.failed,
            "workers": {
                "alive": self.workers.alive,
                "last_heartbeat": self.workers.last_heartbeat,
                "last_heartbeat_age": _round(self.workers.last_heartbeat_age),
            },
            **({"model": self.model} if self.model is not None else {}),
            "recovery": self.recovery,
        }


async def read_figures(
    connection: aioredis.Redis, queue_name: str, *, now: float, platforms: Iterable[str] = ()
) -> Figures:
    """Read every figure (the last sweeps of ``platforms``); raises Redis' own errors (the caller
    turns them into ``unavailable``)."""
    async with connection.pipeline(transaction=False) as pipe:
        pipe.llen(f"{RQ_KEY_PREFIX}:queue:{queue_name}")
        pipe.lindex(f"{RQ_KEY_PREFIX}:queue:{queue_name}", 0)
        pipe.zcard(f"{RQ_KEY_PREFIX}:wip:{queue_name}")
        pipe.zcard(f"{RQ_KEY_PREFIX}:scheduled:{queue_name}")
        pipe.zcard(f"{RQ_KEY_PREFIX}:failed:{queue_name}")
        pipe.smembers(keys.WORKERS)
        pipe.get(keys.MODEL_HEALTH)
        queued, head, running, retrying, failed, names, model = await pipe.execute()
    return Figures(
        queued=int(queued),
        oldest_queued_age=await _age_of(connection, head, now),
        running=int(running),
        retrying=int(retrying),
        failed=int(failed),
        workers=await _workers(connection, sorted(_text(name) for name in names), now),
        model=_model(model),
        recovery=await last_sweeps(connection, platforms),
    )


async def _age_of(connection: aioredis.Redis, job_id: bytes | None, now: float) -> float | None:
    """Seconds since the job at the queue's head was enqueued (``None``: the queue is empty)."""
    if job_id is None:
        return None
    enqueued = await connection.hget(f"{RQ_KEY_PREFIX}:job:{_text(job_id)}", "enqueued_at")
    at = _parse(enqueued)
    return None if at is None else max(0.0, now - at)


async def _workers(connection: aioredis.Redis, names: list[str], now: float) -> WorkerFigures:
    if not names:
        return WorkerFigures(alive=0, registered=0, last_heartbeat=None, last_heartbeat_age=None)
    async with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(keys.lease(name))
            pipe.hget(f"{RQ_KEY_PREFIX}:worker:{name}", "last_heartbeat")
        answers = await pipe.execute()
    alive = sum(int(found) for found in answers[0::2])
    beats = [at for at in (_parse(raw) for raw in answers[1::2]) if at is not None]
    newest = max(beats, default=None)
    return WorkerFigures(
        alive=alive,
        registered=len(names),
        last_heartbeat=None if newest is None else datetime.fromtimestamp(newest, UTC).isoformat(),
        last_heartbeat_age=None if newest is None else max(0.0, now - newest),
    )


def _model(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _parse(raw: bytes | str | None) -> float | None:
    """A Unix time from RQ's timestamps (``2026-12-01T23:00:00.123456Z``), ``None`` if unreadable."""
    if not raw:
        return None
    text = _text(raw).replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
