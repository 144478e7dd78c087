"""Run state in Redis, shared by both sides: one record (a hash) and one event stream per run.

Workers write it (through ``handlers.state.runs``, which re-exports this module); the web side's
runs API, console and the ``gateway runs`` commands read it, whichever worker wrote it, and the
API's retry writes it too. Defining it here, on the side that must not import the other, keeps
one schema for both. A run's id is its job id. A job no worker has touched yet has no record
(or only a recovery sweep's fields, below): its status comes from RQ's job hash, else ``queued``.

Record fields: ``status`` (``STATUSES``), ``platform``, ``delivery_id``, ``event``, ``session``,
``attempts`` (starts), ``retries`` (transient retries scheduled), ``queued_at``, ``started_at``,
``ended_at``, ``duration``, ``worker``, ``error``, ``reply``, ``next_attempt_at``, ``note``,
``undelivered`` (why a reply could not be posted, e.g. an expired Slack ``response_url``), the
list of ``progress`` messages, and ``outcome`` (``recovered``), ``source`` and ``recovered_at``
when a recovery sweep (``handlers.recover``) brought the delivery back. Every ``write`` that sets
a ``status`` also appends a ``status`` event (and ``done`` when the status ends the run) on the
same pipeline, so the event and the record commit together.

Run events are a Redis Stream per run (``keys.run_events``): each entry has ``event`` (one of
``EVENT_KINDS``) and ``data`` (JSON), and its stream id (``<ms>-<seq>``) only grows, so a reader
resumes after the last id it saw. A run with no event yet reads as one synthetic ``status``
event, id ``QUEUED_ID``, which sorts before every real id (and, when that status is final, a
synthetic ``done``, id ``DONE_ID``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import redis
from redis.client import Pipeline
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import as_text

from gateway import keys

__all__ = [
    "EVENT_KINDS",
    "MAX_EVENTS",
    "MAX_FIELD",
    "MAX_PROGRESS",
    "DONE_ID",
    "QUEUED_ID",
    "RUN_TTL",
    "STATUSES",
    "TERMINAL",
    "RunEvent",
    "RunPage",
    "Status",
    "add_event",
    "add_progress",
    "decode_events",
    "get_run",
    "index_member",
    "list_runs",
    "public_record",
    "read_events",
    "status_of",
    "utcnow",
    "write",
]

Status = Literal["queued", "running", "retrying", "succeeded", "failed", "timed_out", "cancelled"]
STATUSES: tuple[str, ...] = ("queued", "running", "retrying", "succeeded", "failed", "timed_out", "cancelled")
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
EVENT_KINDS: tuple[str, ...] = ("status", "progress", "message", "reply", "done")
QUEUED_ID = "0-1"
DONE_ID = "0-2"
RUN_TTL = 7 * 24 * 3600
MAX_PROGRESS = 200
MAX_FIELD = 8000
MAX_EVENTS = 1000
# Record fields a status event carries along, when the write sets them.
_STATUS_DETAILS = ("error", "note", "next_attempt_at", "worker")
# Record fields the runs API shows only when they are set.
_EXTRAS = (
    "delivery_id",
    "retries",
    "next_attempt_at",
    "note",
    "duration",
    "worker",
    "accounting",
    "outcome",
    "source",
    "recovered_at",
)
_SCAN_BATCH = 200
_MAX_SCANNED = 5000  # index entries one filtered page may look at before it answers with a cursor

_FROM_RQ: dict[JobStatus, Status] = {
    JobStatus.QUEUED: "queued",
    JobStatus.DEFERRED: "queued",
    JobStatus.SCHEDULED: "retrying",
    JobStatus.CREATED: "queued",
    JobStatus.STARTED: "running",
    JobStatus.FINISHED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.STOPPED: "cancelled",
    JobStatus.CANCELED: "cancelled",
}


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: its stream id, its kind and its JSON data."""

    id: str
    kind: str
    data: dict[str, Any]

    @functools.cached_property
    def sse(self) -> bytes:
        """The event as a server-sent event, encoded once however many followers get it."""
        data = orjson.dumps(self.data)
        return b"id: " + self.id.encode() + b"\nevent: " + self.kind.encode() + b"\ndata: " + data + b"\n\n"


@dataclass(frozen=True)
class RunPage:
    """One page of the runs list, newest first; ``cursor`` fetches the next (``None``: no more)."""

    runs: list[dict[str, Any]]
    cursor: str | None


def utcnow() -> str:
    """The current time as ISO-8601 UTC, the format of every timestamp in a record."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def write(pipeline: Pipeline | redis.Redis, job_id: str, **fields: object) -> None:
    """Set ``fields`` on the record (``None`` values are removed) and refresh its TTL.

    Setting ``status`` also appends the ``status`` event (and ``done`` for a final status).
    """
    key = keys.run(job_id)
    values = {name: _clip(value) for name, value in fields.items() if value is not None}
    empty = [name for name, value in fields.items() if value is None]
    if values:
        pipeline.hset(key, mapping=values)  # type: ignore[arg-type]
    if empty:
        pipeline.hdel(key, *empty)
    pipeline.expire(key, RUN_TTL)
    status = fields.get("status")
    if isinstance(status, str):
        details = {name: values[name] for name in _STATUS_DETAILS if name in values}
        add_event(pipeline, job_id, "status", status=status, **details)
        if status in TERMINAL:
            add_event(pipeline, job_id, "done", status=status)


def add_progress(connection: redis.Redis | Pipeline, job_id: str, text: str) -> None:
    """Append one progress message, keeping the newest ``MAX_PROGRESS``, and its ``progress`` event."""
    key = keys.run_progress(job_id)
    pipe = connection.pipeline() if isinstance(connection, redis.Redis) else connection
    pipe.rpush(key, _clip(text))
    pipe.ltrim(key, -MAX_PROGRESS, -1)
    pipe.expire(key, RUN_TTL)
    add_event(pipe, job_id, "progress", text=_clip(text))
    if isinstance(connection, redis.Redis):
        pipe.execute()


def add_event(pipe: Pipeline | redis.Redis, job_id: str, kind: str, **data: Any) -> None:
    """Queue one ``kind`` event of ``job_id`` with ``data`` and the time (``at``) on ``pipe``."""
    assert kind in EVENT_KINDS, kind
    key = keys.run_events(job_id)
    body = orjson.dumps({**data, "at": utcnow()}, default=str)
    pipe.xadd(key, {"event": kind, "data": body}, maxlen=MAX_EVENTS, approximate=True)
    pipe.expire(key, RUN_TTL)


def _clip(value: object) -> str | int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"


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
    for name in ("accounting", "feedback"):
        if name in record:
            record[name] = orjson.loads(record[name])
    return record


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the runs API shows it: ``run_id``, ``platform``, ``event``, ``status``, ... ."""
    shown = {
        "run_id": record["job_id"],
        "platform": record.get("platform") or record["job_id"].split("-", 1)[0],
        "event": record.get("event"),
        "status": record.get("status"),
        "session": record.get("session"),
        "attempts": record.get("attempts", 0),
        "created_at": record.get("queued_at"),
        "started_at": record.get("started_at"),
        "ended_at": record.get("ended_at"),
        "progress": record.get("progress", []),
        "reply": record.get("reply"),
        "error": record.get("error"),
    }
    for extra in _EXTRAS:
        if record.get(extra) not in (None, ""):
            shown[extra] = record[extra]
    return shown


def status_of(connection: redis.Redis, job_id: str) -> str | None:
    """The run's status from its record, else from RQ; ``None`` for an unknown run."""
    status = connection.hget(keys.run(job_id), "status")
    if status is not None:
        return as_text(status)
    fallback = _from_rq(connection, job_id)
    return str(fallback["status"]) if fallback else None


def index_member(job_id: str, at_ms: int) -> str:
    """The runs index entry of ``job_id`` arriving at ``at_ms``: sorted by time, then id, as text."""
    return f"{at_ms:013d}:{job_id}"


def list_runs(
    connection: redis.Redis,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    platform: str | None = None,
) -> RunPage:
    """Runs newest first, ``limit`` at most, after ``cursor`` (the last entry of a previous page).

    The index (``keys.RUNS``) holds one entry per run, ``<arrival ms>:<job id>``, all at score 0,
    so it reads in arrival order by text and a cursor is exact however many runs share a
    millisecond. A filtered page looks at no more than ``_MAX_SCANNED`` entries: it may come
    back short, with a cursor to go on from.
    """
    top = f"({cursor}" if cursor else "+"
    found: list[dict[str, Any]] = []
    scanned, last = 0, None
    while len(found) < limit and scanned < _MAX_SCANNED:
        batch = [as_text(m) for m in connection.zrevrangebylex(keys.RUNS, top, "-", start=0, num=_SCAN_BATCH)]
        if not batch:
            return RunPage(found, None)
        for member in batch:
            scanned, last = scanned + 1, member
            job_id = member.partition(":")[2]
            if platform and not job_id.startswith(f"{platform}-"):
                continue
            record = get_run(connection, job_id)
            if record is not None and (not status or record.get("status") == status):
                found.append(public_record(record))
                if len(found) == limit:
                    break
        top = f"({last}"
    return RunPage(found, last)


def read_events(connection: redis.Redis, job_id: str, *, after: str | None = None) -> list[RunEvent]:
    """The events of ``job_id`` after stream id ``after`` (all of them without it), oldest first.

    A run that exists but has no event yet reads as the synthetic queued event.
    """
    raw = connection.xrange(keys.run_events(job_id), min=f"({after}" if after else "-", max="+")
    if raw or (after is not None and after != "0-0"):
        return decode_events(raw)
    status = status_of(connection, job_id)
    if status is None:
        return []
    # A run with no stream: not started yet, or recorded before runs had events.
    events = [RunEvent(QUEUED_ID, "status", {"status": status})]
    if status in TERMINAL:
        events.append(RunEvent(DONE_ID, "done", {"status": status}))
    return events


def decode_events(raw: Any) -> list[RunEvent]:
    """Stream entries (``XRANGE``/``XREAD`` pairs of id and fields) as ``RunEvent`` s; entries
    that are not events are skipped."""
    events = []
    for entry_id, fields in raw or ():
        values = {as_text(k): as_text(v) for k, v in fields.items()}
        kind = values.get("event")
        if kind in EVENT_KINDS:
            try:
                data = orjson.loads(values.get("data") or "{}")
            except orjson.JSONDecodeError:
                data = {}
            events.append(RunEvent(as_text(entry_id), str(kind), data if isinstance(data, dict) else {}))
    return events


def _from_rq(connection: redis.Redis, job_id: str) -> dict[str, Any] | None:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return None
    queued_at = job.enqueued_at.isoformat() if job.enqueued_at else None
    return {"status": _FROM_RQ.get(status, "queued"), "queued_at": queued_at, "rq_status": status.value}
