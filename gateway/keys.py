"""The Redis keys both sides use: written by one, read by the other.

The ingress writes the claims; the workers write run records and read cancellation flags that
the web side (the runs API) may set, and record each platform's last recovery sweep, which
``/health`` shows. Defining them here, on the side that must not import the
other, keeps one name for each; ``handlers.state.keys`` re-exports them beside the worker's own.
"""

from __future__ import annotations

__all__ = ["CANCEL_CHANNEL", "CLAIM_PREFIX", "PREFIX", "cancel", "claim", "last_sweep", "run", "run_progress"]

PREFIX = "gateway"
CLAIM_PREFIX = f"{PREFIX}:claim:"
CANCEL_CHANNEL = f"{PREFIX}:cancel"
"""Pub/sub channel carrying the ids of cancelled runs, for a prompt stop."""


def claim(job_id: str) -> str:
    """Marks ``job_id``'s delivery as claimed (written with its job, in one Lua script); lives at
    least ``GATEWAY_DEDUPE_TTL``."""
    return CLAIM_PREFIX + job_id


def cancel(job_id: str) -> str:
    """Set when ``job_id`` was asked to stop; read at claim time and by heartbeats."""
    return f"{PREFIX}:cancel:{job_id}"


def run(job_id: str) -> str:
    """Hash: the run record of one delivery (status, timings, attempts, error, reply)."""
    return f"{PREFIX}:run:{job_id}"


def run_progress(job_id: str) -> str:
    """List: the progress messages of one run, oldest first."""
    return f"{PREFIX}:run:{job_id}:progress"


def last_sweep(platform: str) -> str:
    """Hash: the last recovery sweep of ``platform`` (when, found, requeued, errors); see
    ``gateway.recovery``."""
    return f"{PREFIX}:recover:{platform}:last"
