"""Run state in Redis, shared by both sides: one record (a hash) and one event stream per run.

Workers write it (through ``handlers.state.runs``, which re-exports this module); the web side's
runs API, console and the ``gateway runs`` commands read it, whichever worker wrote it, and the
API's retry writes it too. Defining it here, on the side that must not import the other, keeps
one schema for both. A run's id is its job id. A job no worker has touched yet has no record
(or only a recovery sweep's fields, below): its status comes from RQ's job hash, else ``queued``.

Record fields: ``status`` (``STATUSES``), ``platform``, ``delivery_id``, ``event``, ``session``,
``attempts`` (starts), ``retries`` (transient retries scheduled), ``queued_at``, ``started_at``,
``ended_at``, ``duration``, ``worker``, ``error``, ``reply``, ``next_attempt_at``, ``note``,
``undelivered`` (why a reply could not be posted, e.g. an expired Slack ``response_url``),
``streamed_chars`` (how much answer text the agent streamed with ``run.stream``), the
list of ``progress`` messages, ``outcome`` (``recovered``), ``source`` and ``recovered_at``
when a recovery sweep (``handlers.recover``) brought the delivery back, and ``feedback``: the
ratings people gave the answer (Slack's feedback buttons, ``add_feedback``), one per person.
Every ``write`` that sets a ``status`` also appends a ``status`` event (and ``done`` when the
status ends the run) on the same pipeline, so the event and the record commit together.

Every event has a kind (``event``, one of
``EVENT_KINDS``) and ``data`` (JSON), and its id (``<ms>-<seq>``, from the shared stream) only
grows, so a reader resumes after the last id it saw. A run with no event yet reads as one synthetic ``status``
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
from redis.commands.core import Script
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
    "ADD_EVENT",
    "ADD_EVENT_LUA",
    "EVENTS_KEPT",
    "RUN_TTL",
    "STATUSES",
    "TERMINAL",
    "RunEvent",
    "RunPage",
    "Status",
    "RATINGS",
    "add_event",
    "add_feedback",
    "add_progress",
    "decode_stream",
    "get_run",
    "index_member",
    "is_newer",
    "list_runs",
    "public_record",
    "read_events",
    "read_history",
    "retention",
    "set_retention",
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
"""How long a run record, its events and its index entry are kept by default (``GATEWAY_RUN_RETENTION``)."""
MAX_PROGRESS = 200
MAX_FIELD = 8000
MAX_EVENTS = 1000
EVENTS_KEPT = 100_000
# Appends one event to the shared stream (which gives it its id) and to the run's own list.
#   KEYS[1] the shared stream, KEYS[2] the run's list
#   ARGV[1] job id, ARGV[2] kind, ARGV[3] JSON data, ARGV[4] stream entries kept (about),
#   ARGV[5] list entries kept, ARGV[6] the list's TTL in seconds
ADD_EVENT_LUA = """
local function add_event(events, list, job_id, kind, data, kept, per_run, ttl)
  local id = redis.call('XADD', events, 'MAXLEN', '~', kept, '*', 'run', job_id, 'event', kind, 'data', data)
  redis.call('RPUSH', list, id .. ' ' .. kind .. ' ' .. data)
  redis.call('LTRIM', list, -tonumber(per_run), -1)
  redis.call('EXPIRE', list, ttl)
  return id
end
"""
ADD_EVENT = Script(
    None,  # type: ignore[arg-type]  # bytes need no client to hash; each call names its client
    (
        ADD_EVENT_LUA
        + "return add_event(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])"
    ).encode(),
)
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
    "feedback",
    "outcome",
    "source",
    "recovered_at",
)
RATINGS: tuple[str, ...] = ("good", "bad")
# Sets one person's rating in the record's ``feedback`` field (JSON: user -> {rating, at}), in
# one step so two clicks at once both count; a record that does not exist is left alone.
#   KEYS[1] the run record; ARGV[1] user, ARGV[2] rating, ARGV[3] when (ISO-8601)
_ADD_FEEDBACK = Script(
    None,  # type: ignore[arg-type]
    b"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], 'feedback')
local given = {}
if raw then given = cjson.decode(raw) end
given[ARGV[1]] = {rating = ARGV[2], at = ARGV[3]}
redis.call('HSET', KEYS[1], 'feedback', cjson.encode(given))
return 1
""",
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


_retention = RUN_TTL


def set_retention(seconds: int) -> None:
    """Keep run records, their events and their index entries ``seconds`` (``GATEWAY_RUN_RETENTION``);
    each process that writes them sets it once at start."""
    global _retention
    _retention = seconds


def retention() -> int:
    """Seconds a run record is kept after its last write."""
    return _retention


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
    pipeline.expire(key, _retention)
    status = fields.get("status")
    if isinstance(status, str):
        details = {name: values[name] for name in _STATUS_DETAILS if name in values}
        add_event(pipeline, job_id, "status", status=status, **details)
        if status in TERMINAL:
            add_event(pipeline, job_id, "done", status=status)


def add_progress(connection: redis.Redis | Pipeline, job_id: str, text: str) -> None:
    """Append one ``progress`` event (the run record's progress is read from these)."""
    add_event(connection, job_id, "progress", text=_clip(text))


def add_event(pipe: Pipeline | redis.Redis, job_id: str, kind: str, **data: Any) -> None:
    """Append one ``kind`` event of ``job_id`` with ``data`` and the time (``at``), on ``pipe``
    (queued, when it is a pipeline or transaction; at once on a client)."""
    assert kind in EVENT_KINDS, kind
    body = orjson.dumps({**data, "at": utcnow()}, default=str)
    ADD_EVENT(
        keys=[keys.EVENTS, keys.run_events(job_id)],
        args=[job_id, kind, body, EVENTS_KEPT, MAX_EVENTS, _retention],
        client=pipe,
    )


def add_feedback(connection: redis.Redis, job_id: str, *, rating: str, user: str, at: str) -> bool:
    """Record that ``user`` rated run ``job_id``'s answer ``rating`` (``good`` or ``bad``) at ``at``
    (ISO-8601); a later rating by the same user replaces theirs. False, changing nothing, when
    the run has no record (unknown, or no longer kept)."""
    if rating not in RATINGS:
        raise ValueError(f"rating must be one of {RATINGS}, got {rating!r}")
    return bool(_ADD_FEEDBACK(keys=[keys.run(job_id)], args=[user, rating, at], client=connection))


def _feedback(raw: str) -> list[dict[str, str]]:
    """The ``feedback`` field as a list of ``{user, rating, at}``, oldest first."""
    given = orjson.loads(raw)
    if not isinstance(given, dict):
        return []
    rows = [{"user": str(user), **value} for user, value in given.items() if isinstance(value, dict)]
    return sorted(rows, key=lambda row: (str(row.get("at", "")), row["user"]))


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
    events = _listed(connection.lrange(keys.run_events(job_id), 0, -1))
    record["progress"] = [str(e.data.get("text", "")) for e in events if e.kind == "progress"][-MAX_PROGRESS:]
    for name in ("attempts", "retries"):
        record[name] = int(record.get(name, 0))
    if "duration" in record:
        record["duration"] = float(record["duration"])
    if "accounting" in record:
        record["accounting"] = orjson.loads(record["accounting"])
    if "feedback" in record:
        record["feedback"] = _feedback(record["feedback"])
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
    """The events of ``job_id`` after id ``after`` (all of them without it), oldest first.

    A run that exists but has no event yet reads as the synthetic queued event.
    """
    return read_history(connection, job_id, after=after)[0]


def read_history(
    connection: redis.Redis, job_id: str, *, after: str | None = None
) -> tuple[list[RunEvent], str]:
    """``read_events``, and the id of the newest event of any run at that moment (``"0-0"`` if
    none): a live reader of the shared stream goes on after it, so no event falls in between."""
    with connection.pipeline(transaction=True) as pipe:
        pipe.lrange(keys.run_events(job_id), 0, -1)
        pipe.xrevrange(keys.EVENTS, max="+", min="-", count=1)
        listed, newest = pipe.execute()
    tip = as_text(newest[0][0]) if newest else "0-0"
    events = [e for e in _listed(listed) if after is None or is_newer(e.id, after)]
    if events or listed or (after is not None and after != "0-0"):
        return events, tip
    status = status_of(connection, job_id)
    if status is None:
        return [], tip
    # A run with no events: not started yet, or recorded before runs had events.
    synthetic = [RunEvent(QUEUED_ID, "status", {"status": status})]
    if status in TERMINAL:
        synthetic.append(RunEvent(DONE_ID, "done", {"status": status}))
    return synthetic, tip


def is_newer(a: str, b: str) -> bool:
    """True when event id ``a`` comes after ``b`` (ids are ``<ms>-<seq>``)."""
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) > (int(bms), int(bseq or 0))


def decode_stream(raw: Any) -> list[tuple[str, RunEvent]]:
    """Entries of the shared stream (``XREAD`` pairs of id and fields) as ``(job id, event)``;
    entries that are not events are skipped."""
    found = []
    for entry_id, fields in raw or ():
        values = {as_text(k): as_text(v) for k, v in fields.items()}
        kind, job_id = values.get("event"), values.get("run")
        if kind in EVENT_KINDS and job_id:
            found.append((job_id, RunEvent(as_text(entry_id), str(kind), _data(values.get("data")))))
    return found


def _listed(raw: Any) -> list[RunEvent]:
    """A run's list entries (``<id> <kind> <JSON>``) as events."""
    events = []
    for item in raw or ():
        entry_id, _, rest = as_text(item).partition(" ")
        kind, _, data = rest.partition(" ")
        if kind in EVENT_KINDS:
            events.append(RunEvent(entry_id, kind, _data(data)))
    return events


def _data(text: str | None) -> dict[str, Any]:
    try:
        data = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _from_rq(connection: redis.Redis, job_id: str) -> dict[str, Any] | None:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return None
    queued_at = job.enqueued_at.isoformat() if job.enqueued_at else None
    return {"status": _FROM_RQ.get(status, "queued"), "queued_at": queued_at, "rq_status": status.value}
