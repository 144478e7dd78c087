"""Run records: one Redis hash per delivery, readable by job id (what a later runs API serves).

Fields: ``status`` (queued, running, succeeded, failed, timed_out, cancelled), ``platform``,
``delivery_id``, ``event``, ``session``, ``attempts`` (starts), ``retries`` (transient retries
scheduled), ``queued_at``, ``started_at``, ``ended_at``, ``duration``, ``worker``, ``error``,
``reply``, ``next_attempt_at`` and the list of ``progress`` messages; ``outcome`` (``recovered``),
``source`` and ``recovered_at`` when a recovery sweep brought the delivery back. A job that no worker has
touched yet has no record; ``get_run`` then reports RQ's own status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import redis
from redis.client import Pipeline
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import as_text

from handlers.state import keys

__all__ = [
    "MAX_FIELD",
    "MAX_PROGRESS",
    "RUN_TTL",
    "TERMINAL",
    "add_progress",
    "get_run",
    "Status",
    "utcnow",
    "write",
]

Status = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
RUN_TTL = 7 * 24 * 3600
MAX_PROGRESS = 200
MAX_FIELD = 8000

_FROM_RQ: dict[JobStatus, Status] = {
    JobStatus.QUEUED: "queued",
    JobStatus.DEFERRED: "queued",
    JobStatus.SCHEDULED: "queued",
    JobStatus.CREATED: "queued",
    JobStatus.STARTED: "running",
    JobStatus.FINISHED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.STOPPED: "cancelled",
    JobStatus.CANCELED: "cancelled",
}


def utcnow() -> str:
    """The current time as ISO-8601 UTC, the format of every timestamp in a record."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def write(pipeline: Pipeline | redis.Redis, job_id: str, **fields: object) -> None:
    """Set ``fields`` on the record (``None`` values are removed) and refresh its TTL."""
    key = keys.run(job_id)
    values = {name: _clip(value) for name, value in fields.items() if value is not None}
    empty = [name for name, value in fields.items() if value is None]
    if values:
        pipeline.hset(key, mapping=values)  # type: ignore[arg-type]
    if empty:
        pipeline.hdel(key, *empty)
    pipeline.expire(key, RUN_TTL)


def add_progress(connection: redis.Redis | Pipeline, job_id: str, text: str) -> None:
    """Append one progress message, keeping the newest ``MAX_PROGRESS``."""
    key = keys.run_progress(job_id)
    pipe = connection.pipeline() if isinstance(connection, redis.Redis) else connection
    pipe.rpush(key, _clip(text))
    pipe.ltrim(key, -MAX_PROGRESS, -1)
    pipe.expire(key, RUN_TTL)
    if isinstance(connection, redis.Redis):
        pipe.execute()


def get_run(connection: redis.Redis, job_id: str) -> dict[str, Any] | None:
    """The run record of ``job_id`` with its progress messages, or ``None`` if nothing is known."""
    raw = connection.hgetall(keys.run(job_id))
    record: dict[str, Any] = {as_text(k): as_text(v) for k, v in raw.items()}
    if "status" not in record:  # no worker touched it yet (a recovered delivery may be marked already)
        record = {**(_from_rq(connection, job_id) or ({"status": "queued"} if record else {})), **record}
        if not record:
            return None
    record["job_id"] = job_id
    record["progress"] = [as_text(item) for item in connection.lrange(keys.run_progress(job_id), 0, -1)]
    for name in ("attempts", "retries"):
        record[name] = int(record.get(name, 0))
    if "duration" in record:
        record["duration"] = float(record["duration"])
    if "accounting" in record:
        record["accounting"] = orjson.loads(record["accounting"])
    return record


def _from_rq(connection: redis.Redis, job_id: str) -> dict[str, Any] | None:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return None
    queued_at = job.enqueued_at.isoformat() if job.enqueued_at else None
    return {"status": _FROM_RQ.get(status, "queued"), "queued_at": queued_at, "rq_status": status.value}


def _clip(value: object) -> str | int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"
