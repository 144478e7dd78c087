"""What a worker raises as alerts (``gateway.alerts``): runs failed for good, a failed registry
filling up, Redis having been unavailable, a recovery sweep that found missed deliveries.
``handlers.slack.alerts`` posts them, whichever side raised them.

A run that ends ``failed`` (not cancelled or timed out: those were asked for or are counted)
raises ``run_failed``; ``FailedWatch`` checks the failed registry every minute against
``GATEWAY_ALERT_FAILED_THRESHOLD``. Every cause is gated (one alert per 10 minutes); the web
app raises ``redis_unavailable`` under the same cause, so an outage both sides saw is one alert.
"""

from __future__ import annotations

import asyncio

import redis
from rq.defaults import RQ_KEY_PREFIX

from gateway.alerts import Alert, raise_alert

__all__ = ["FailedWatch", "recovery_found", "redis_was_down", "run_failed"]


def run_failed(connection: redis.Redis, job_id: str, platform: str | None, reason: str) -> bool:
    """Raise the alert of a run that failed for good (blocking; run it in a thread)."""
    alert = Alert(
        cause="run_failed",
        text=f"a run failed for good: {job_id} ({platform or 'unknown platform'}): {reason}",
        next=f"`gateway failed show {job_id}`, fix the cause, then `gateway failed retry {job_id}`",
    )
    return raise_alert(connection, alert)


def redis_was_down(connection: redis.Redis, seconds: float) -> bool:
    """Raise the alert of an outage this worker rode out for ``seconds`` (blocking)."""
    alert = Alert(
        cause="redis_unavailable",
        text=f"Redis was unavailable to a worker for about {seconds:.0f} s; runs waited and went on",
        next="check Redis (memory, persistence, `redis-cli ping`) and `gateway runs list --status retrying`",
    )
    return raise_alert(connection, alert)


def recovery_found(connection: redis.Redis, platform: str, found: int, requeued: int) -> bool:
    """Raise the alert of a recovery sweep of ``platform`` that found missed deliveries (blocking)."""
    done = "redelivered" if platform == "github" else "queued"
    alert = Alert(
        cause=f"recovered:{platform}",
        text=f"a recovery sweep of {platform} found {found} missed deliveries ({requeued} {done} now)",
        next=(
            f"`gateway runs list --platform {platform}` to follow them; why were they missed? "
            "the gateway's logs and /health around then, and the platform's delivery log"
        ),
    )
    return raise_alert(connection, alert)


class FailedWatch:
    """Raises an alert while the failed registry of ``queue`` holds ``threshold`` runs or more."""

    interval = 60.0

    def __init__(self, connection: redis.Redis, queue: str, *, threshold: int) -> None:
        self.connection = connection
        self.queue = queue
        self.threshold = threshold

    async def __call__(self) -> None:
        failed = await asyncio.to_thread(self.connection.zcard, f"{RQ_KEY_PREFIX}:failed:{self.queue}")
        if failed < self.threshold:
            return
        alert = Alert(
            cause="failed_piling_up",
            text=f"{failed} runs wait in the failed registry of queue {self.queue}",
            next="`gateway failed list` to see why; `gateway failed retry --all` once the cause is fixed",
        )
        await asyncio.to_thread(raise_alert, self.connection, alert)
