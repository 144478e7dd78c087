"""Follow-ups on the worker: routing each one when it is taken, and filling running runs' mailboxes.

- ``Router``: the ledger asks it about every job it takes. When the job's platform calls the
  delivery a follow-up (``handlers.messages.FollowUp``, read by ``followup_of``, which is
  ``handlers.registry.followup`` with the worker's settings), ``handlers.state.inbox`` routes
  it by ``GATEWAY_FOLLOWUPS`` atomically with its conversation's state.
- ``InboxListener``: hears ``keys.INBOX_CHANNEL`` (a run's inbox grew) and hands the run's id
  to the worker's loop, which ``load`` s the new follow-ups into the run's ``Mailbox`` in an
  I/O thread. The ledger loads when a run starts (before its agent does), and the worker on
  every heartbeat, so a pub/sub message lost while reconnecting delays a follow-up by one
  heartbeat at most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from rq.job import Job
from rq.queue import Queue
from rq.utils import as_text

from handlers.messages import FollowUp, Mailbox
from handlers.state import keys, sessions
from handlers.state.inbox import Inbox, Policy, Routing

__all__ = ["FollowUpOf", "InboxListener", "Router", "load"]

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
        return self.inbox.route(
            queue_key=queue.key,
            job_id=job.id,
            session_id=sessions.session_id(session_key),
            followup=followup,
            policy=self.policy,
            arrival=arrival,
            now=time.time(),
        )

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


class InboxListener(threading.Thread):
    """Hears which runs' inboxes grew and calls ``on_message(job_id)`` (from this thread)."""

    def __init__(self, connection: redis.Redis, *, on_message: Callable[[str], object]) -> None:
        super().__init__(name="gateway-inbox", daemon=True)
        self.connection = connection
        self.on_message = on_message
        self._halt = threading.Event()

    def run(self) -> None:
        """Subscribe and pass ids on until ``halt``; resubscribes after Redis errors."""
        while not self._halt.is_set():
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(keys.INBOX_CHANNEL)
                while not self._halt.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.on_message(as_text(message["data"]))
            except redis.RedisError:
                logger.warning("inbox channel lost; resubscribing", exc_info=True)
                self._halt.wait(1.0)
            finally:
                pubsub.close()

    def halt(self) -> None:
        """Stop listening (within about a second)."""
        self._halt.set()
        self.join(timeout=3)
