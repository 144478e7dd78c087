"""Follow-ups on the worker: routing each one when it is taken, and filling running runs' mailboxes.

- ``Router``: the ledger asks it about every job it takes. When the job's platform calls the
  delivery a follow-up (``handlers.messages.FollowUp``, read by ``followup_of``, which is
  ``handlers.registry.followup`` with the worker's settings), ``handlers.state.inbox`` routes
  it by ``GATEWAY_FOLLOWUPS`` atomically with its conversation's state; each one handed to a
  running run is counted (``handlers.metrics.count_followup``).
- ``load``: copies the new follow-ups of a run's inbox into its ``Mailbox``. The worker's
  command listener (``handlers.runtime.commands``) hears ``keys.INBOX_CHANNEL`` (a run's inbox
  grew) and the worker's loop loads it in an I/O thread; the ledger loads when a run starts
  (before its agent does), and the worker on every heartbeat, so a pub/sub message lost while
  reconnecting delays a follow-up by one heartbeat at most.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from rq.job import Job
from rq.queue import Queue

from handlers import metrics
from handlers.messages import FollowUp, Mailbox
from handlers.state import sessions
from handlers.state.inbox import Inbox, Policy, Routing

__all__ = ["FollowUpOf", "Router", "load"]

logger = logging.getLogger("handlers.runtime")

FollowUpOf = Callable[[Mapping[str, Any]], "FollowUp | None"]
"""The follow-up a queued envelope is, if any (``handlers.registry.followup`` with the settings)."""


class Router:
    """Routes follow-ups by ``policy`` (``GATEWAY_FOLLOWUPS``); every method is synchronous."""

    def __init__(self, connection: redis.Redis, *, policy: Policy, followup_of: FollowUpOf) -> None:
        self.inbox = Inbox(connection)
        self.policy: Policy = policy
        self.followup_of = followup_of

    def route(self, queue: Queue, job: Job, session_key: str) -> Routing | None:
        """What becomes of ``job`` (the head of ``queue``) as a follow-up; ``None`` if it is none."""
        followup = self._followup(job)
        if followup is None:
            return None
        arrival = job.created_at.timestamp() if job.created_at else time.time()
        routing = self.inbox.route(
            queue_key=queue.key,
            job_id=job.id,
            func_name=job.func_name or "",
            session_id=sessions.session_id(session_key),
            followup=followup,
            policy=self.policy,
            arrival=arrival,
            now=time.time(),
        )
        if routing.verdict == "steered":
            metrics.count_followup(followup.message.platform)
        return routing

    def _followup(self, job: Job) -> FollowUp | None:
        try:
            envelope = job.args[0] if job.args else None
            return self.followup_of(envelope) if isinstance(envelope, dict) else None
        except Exception:  # noqa: BLE001 - an unreadable delivery is simply not a follow-up
            logger.warning("could not read a follow-up", extra={"fields": {"job_id": job.id}}, exc_info=True)
            return None


def load(inbox: Inbox, job_id: str, mailbox: Mailbox) -> int:
    """Copy the follow-ups of ``job_id``'s inbox that ``mailbox`` lacks into it; returns how many."""
    with mailbox.loading:
        messages = inbox.load(job_id, mailbox.loaded)
        mailbox.add(messages)
    return len(messages)
