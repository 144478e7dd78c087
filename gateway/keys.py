"""The Redis keys both sides use: written by one, read by the other.

The ingress writes the claims; the workers write run records and read cancellation flags that
the web side (the runs API) may set, and record each platform's last recovery sweep, which
``/health`` shows. Defining them here, on the side that must not import the
other, keeps one name for each; ``handlers.state.keys`` re-exports them beside the worker's own.
"""

from __future__ import annotations

__all__ = [
    "ALERTS",
    "CANCEL_CHANNEL",
    "CLAIM_PREFIX",
    "DELIVERIES",
    "EVENTS",
    "MODEL_HEALTH",
    "PREFIX",
    "RUNS",
    "WORKERS",
    "alert_gate",
    "cancel",
    "claim",
    "last_sweep",
    "lease",
    "run",
    "run_events",
    "slack_installation",
    "slack_installation_lock",
    "slack_oauth_state",
]

PREFIX = "gateway"
CLAIM_PREFIX = f"{PREFIX}:claim:"
CANCEL_CHANNEL = f"{PREFIX}:cancel"
"""Pub/sub channel carrying the ids of cancelled runs, for a prompt stop."""
EVENTS = f"{PREFIX}:events"
"""Stream of every run's events, newest appended, capped: what live followers read, one XREAD for all."""
RUNS = f"{PREFIX}:runs"
"""Sorted set of every run's job id, scored by arrival (Unix milliseconds): the runs list, newest first."""
DELIVERIES = f"{PREFIX}:deliveries"
"""Stream of the deliveries the ingress saw (refused ones too), capped: ``GET /api/deliveries``."""
WORKERS = f"{PREFIX}:workers"
"""Set of runtime worker names that may hold claims; the reaper walks it, ``/health`` counts it."""
MODEL_HEALTH = f"{PREFIX}:health:model"
"""JSON: whether the model server answered a worker's last probe (short TTL: a stale answer goes)."""
ALERTS = f"{PREFIX}:alerts"
"""Stream of alerts raised by either side, capped; a worker posts each once (a consumer group)."""


def claim(job_id: str) -> str:
    """Marks ``job_id``'s delivery as claimed (written with its job, in one Lua script); lives at
    least ``GATEWAY_DEDUPE_TTL``."""
    return CLAIM_PREFIX + job_id


def cancel(job_id: str) -> str:
    """Set when ``job_id`` was asked to stop; read at claim time and by heartbeats."""
    return f"{PREFIX}:cancel:{job_id}"


def lease(worker: str) -> str:
    """Exists while ``worker`` is alive (short TTL, renewed by its heartbeat)."""
    return f"{PREFIX}:worker:{worker}:lease"


def alert_gate(cause: str) -> str:
    """Set for 10 minutes when an alert of ``cause`` is raised: at most one per cause meanwhile."""
    return f"{PREFIX}:alert:{cause}"


def run(job_id: str) -> str:
    """Hash: the run record of one delivery (status, timings, attempts, error, reply)."""
    return f"{PREFIX}:run:{job_id}"


def run_events(job_id: str) -> str:
    """List: the events of one run (status, progress, message, reply, done), oldest first, each
    ``<id> <kind> <JSON data>`` with the id its entry got in ``EVENTS``."""
    return f"{PREFIX}:run:{job_id}:events"


def slack_installation(enterprise_id: str | None, team_id: str | None) -> str:
    """Hash: one Slack installation (bot token encrypted), written by ``/slack/oauth_redirect``,
    read and refreshed by workers; ``-`` stands for no enterprise (or, for an org-wide install,
    no team)."""
    return f"{PREFIX}:slack:installation:{enterprise_id or '-'}:{team_id or '-'}"


def slack_installation_lock(installation_key: str) -> str:
    """Held by the one worker refreshing that installation's rotating token (refresh tokens work once)."""
    return f"{installation_key}:refreshing"


def slack_oauth_state(state: str) -> str:
    """Set by ``/slack/install`` for ten minutes; ``/slack/oauth_redirect`` takes it once."""
    return f"{PREFIX}:slack:oauth-state:{state}"


def last_sweep(platform: str) -> str:
    """Hash: the last recovery sweep of ``platform`` (when, found, requeued, errors); see
    ``gateway.recovery``."""
    return f"{PREFIX}:recover:{platform}:last"
