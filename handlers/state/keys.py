"""Every Redis key the worker side reads or writes besides RQ's own, in one place.

RQ's keys (``rq:job:<id>``, ``rq:queue:<name>``, ``rq:wip:<name>``...) are named by RQ; the
prefix is read from RQ so a custom ``RQ_KEY_PREFIX`` keeps working. The keys the web side
reads or writes too (claims, run records, cancellation) are ``gateway.keys``', re-exported here.
"""

from __future__ import annotations

from rq.defaults import RQ_KEY_PREFIX

from gateway.keys import (
    ALERTS,
    CANCEL_CHANNEL,
    DELIVERIES,
    EVENTS,
    MODEL_HEALTH,
    PREFIX,
    RUNS,
    WORKERS,
    alert_gate,
    cancel,
    claim,
    last_sweep,
    lease,
    run,
    run_events,
)

SESSIONS_WAITING = f"{PREFIX}:sessions:waiting"
"""Set of session ids that have parked events; the reaper unsticks orphaned ones."""
INBOX_CHANNEL = f"{PREFIX}:inbox"
"""Pub/sub channel carrying the job id of a run whose inbox just got a follow-up."""

__all__ = [
    "ALERTS",
    "CANCEL_CHANNEL",
    "DELIVERIES",
    "EVENTS",
    "INBOX_CHANNEL",
    "MODEL_HEALTH",
    "PREFIX",
    "RQ_JOB",
    "RQ_QUEUE",
    "RUNS",
    "SESSIONS_WAITING",
    "WORKERS",
    "alert_gate",
    "asking",
    "cancel",
    "claim",
    "claimed",
    "followup",
    "held",
    "inbox",
    "last_sweep",
    "lease",
    "recover_lock",
    "recover_state",
    "reply",
    "retry_mover",
    "run",
    "run_events",
    "session_history",
    "session_lock",
    "session_wait",
    "slack_assistant",
    "slack_budget",
    "slack_pause",
]

RQ_JOB = f"{RQ_KEY_PREFIX}:job:"
RQ_QUEUE = f"{RQ_KEY_PREFIX}:queue:"


def claimed(worker: str) -> str:
    """Set of job ids ``worker`` has taken from the queue and not yet finished."""
    return f"{PREFIX}:worker:{worker}:claimed"


def held(job_id: str) -> str:
    """``<worker>|<token>`` of the one claim that may finish ``job_id``."""
    return f"{PREFIX}:held:{job_id}"


def session_history(session_id: str) -> str:
    """List of JSON turns of one session, oldest first."""
    return f"{PREFIX}:session:{session_id}:history"


def session_lock(session_id: str) -> str:
    """Id of the job that owns the session right now (running, queued or awaiting a retry)."""
    return f"{PREFIX}:session:{session_id}:lock"


def session_wait(session_id: str) -> str:
    """Sorted set of parked job ids of the session, scored by arrival (job creation time)."""
    return f"{PREFIX}:session:{session_id}:wait"


def reply(job_id: str) -> str:
    """Hash: what was posted for one delivery (message ts, comment id, ``answered``), kept for at
    least the dedupe window so a rerun edits or skips instead of posting again."""
    return f"{PREFIX}:reply:{job_id}"


def retry_mover(queue: str) -> str:
    """Name of the worker moving ``queue``'s due retries back to it (short TTL, renewed by it)."""
    return f"{PREFIX}:retry-mover:{queue}"


def recover_lock(platform: str) -> str:
    """``<owner>|<token>`` of the one recovery sweep of ``platform`` running now (TTL, renewed)."""
    return f"{PREFIX}:recover:{platform}:lock"


def recover_state(platform: str) -> str:
    """Hash: per source of ``platform``, how far its sweeps got (``<source>|swept_until`` ...)."""
    return f"{PREFIX}:recover:{platform}:state"


def slack_budget(team: str, method: str, scope: str = "") -> str:
    """Hash ``tokens``/``at``: the token bucket of one Slack method in one workspace (``scope``: a
    channel, for per-channel limits), shared by every worker."""
    return f"{PREFIX}:slack:budget:{team}:{method}:{scope}"


def slack_assistant(session: str) -> str:
    """Hash ``context`` (JSON: the ``channel_id``, ``team_id``, ``enterprise_id`` the user is looking
    at) and ``event_ts`` of one Slack assistant thread (``session``: its session id), kept as long
    as the thread's history."""
    return f"{PREFIX}:slack:assistant:{session}"


def slack_pause(team: str, method: str, scope: str = "") -> str:
    """Exists while Slack's last ``Retry-After`` for that method and workspace runs (PX TTL)."""
    return f"{PREFIX}:slack:pause:{team}:{method}:{scope}"


def inbox(job_id: str) -> str:
    """List of the follow-ups handed to run ``job_id`` (JSON: the follow-up's job id and message),
    oldest first; after the run ends, only those it read."""
    return f"{PREFIX}:inbox:{job_id}"


def followup(job_id: str) -> str:
    """Hash: what became of follow-up ``job_id``: ``state`` (``inbox``, ``read``, ``unread``,
    ``stop``, ``busy``, ``interrupt``) and ``run``, the run it went to or concerns."""
    return f"{PREFIX}:followup:{job_id}"


def asking(job_id: str) -> str:
    """Set (with a TTL) while run ``job_id`` waits for the answer to a question it asked: the next
    follow-up of its conversation goes to it whatever the policy."""
    return f"{PREFIX}:asking:{job_id}"
