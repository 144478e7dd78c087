"""Stopping runs from outside: ``cancel_run`` (the CLI) and the listener inside each worker.

``cancel_run`` sets ``gateway:cancel:<job>`` (read when a job starts and by every heartbeat)
and publishes the id on ``gateway:cancel`` for a prompt stop. A job not started yet is taken
out of its queue, session or retry schedule and cancelled with RQ's ``Job.cancel``. RQ's own
``send_stop_job_command`` / ``send_stop_execution_command`` reach the worker on its RQ pub/sub
channel and are handled the same way; RQ's ``shutdown`` command starts a drain.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import redis
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.defaults import RQ_KEY_PREFIX
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import as_text

from handlers.runtime.ledger import LOCK_MS, SessionKey, session_key_for
from handlers.runtime.scripts import HANDOFF
from handlers.state import keys, runs, sessions

__all__ = ["CANCEL_TTL", "CommandListener", "cancel_run"]

logger = logging.getLogger("handlers.runtime")

CANCEL_TTL = 7 * 24 * 3600
_ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


def cancel_run(connection: redis.Redis, job_id: str, *, session_key: SessionKey) -> str:
    """Cancel run ``job_id`` wherever it is; returns what happened. Raises ``LookupError``.

    ``session_key`` finds the job's session (``handlers.registry.session_key``), where a job
    waiting behind an earlier event of its conversation is parked.
    """
    if not Job.exists(job_id, connection=connection):
        raise LookupError(job_id)
    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    status = job.get_status()
    if status in _ENDED:
        return f"not cancelled: the run already ended ({status.value})"
    with connection.pipeline() as pipe:
        pipe.set(keys.cancel(job_id), "1", ex=CANCEL_TTL)
        pipe.publish(keys.CANCEL_CHANNEL, job_id)
        pipe.execute()
    key = session_key_for(job, session_key)
    if _take_out_waiting(connection, job, key):
        _cancel_waiting(connection, job, key)
        return "cancelled before it started"
    return "cancellation requested; the worker running it stops it"


def _take_out_waiting(connection: redis.Redis, job: Job, key: str | None) -> bool:
    """Remove a not-yet-started job from where it waits; True if this call removed it."""
    if key is not None and connection.zrem(keys.session_wait(sessions.session_id(key)), job.id):
        return True
    if connection.lrem(keys.RQ_QUEUE + job.origin, 0, job.id):
        return True
    # A transient failure waits in RQ's ScheduledJobRegistry for its retry.
    return bool(connection.zrem(ScheduledJobRegistry(job.origin, connection=connection).key, job.id))  # type: ignore[no-untyped-call]


def _cancel_waiting(connection: redis.Redis, job: Job, key: str | None) -> None:
    job.cancel()
    runs.write(
        connection, job.id, status="cancelled", error="cancelled before it started", ended_at=runs.utcnow()
    )
    if key is not None:
        sid = sessions.session_id(key)
        handoff = connection.register_script(HANDOFF)
        handoff(
            keys=[keys.session_lock(sid), keys.session_wait(sid), keys.SESSIONS_WAITING],
            args=[job.id, RQ_KEY_PREFIX, LOCK_MS, sid],
        )


class CommandListener(threading.Thread):
    """Listens for cancellations and RQ worker commands, and with ``on_inbox`` for runs whose
    inbox grew (``keys.INBOX_CHANNEL``, ``handlers.runtime.steering``): one pub/sub connection
    per worker; hands each to the event loop."""

    def __init__(
        self,
        connection: redis.Redis,
        worker_name: str,
        *,
        on_stop: Callable[[str], object],
        on_shutdown: Callable[[], object],
        on_inbox: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(name="gateway-commands", daemon=True)
        self.connection = connection
        inbox = (keys.INBOX_CHANNEL,) if on_inbox is not None else ()
        self.channels = (keys.CANCEL_CHANNEL, PUBSUB_CHANNEL_TEMPLATE % worker_name, *inbox)
        self.on_stop = on_stop
        self.on_shutdown = on_shutdown
        self.on_inbox = on_inbox
        self._halt = threading.Event()

    def run(self) -> None:
        """Subscribe and dispatch until ``halt``; reconnects after Redis errors (logged once)."""
        lost = False
        while not self._halt.is_set():
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(*self.channels)
                if lost:
                    logger.info("command channel back")
                    lost = False
                while not self._halt.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(as_text(message["channel"]), as_text(message["data"]))
            except redis.RedisError as exc:
                if not lost:
                    logger.warning(
                        "command channel lost; resubscribing", extra={"fields": {"error": str(exc)}}
                    )
                    lost = True
                self._halt.wait(1.0)
            finally:
                pubsub.close()

    def halt(self) -> None:
        """Stop listening (within about a second)."""
        self._halt.set()
        self.join(timeout=3)

    def _dispatch(self, channel: str, data: str) -> None:
        if channel == keys.CANCEL_CHANNEL:
            self.on_stop(data)
            return
        if channel == keys.INBOX_CHANNEL and self.on_inbox is not None:
            self.on_inbox(data)
            return
        try:
            payload = json.loads(data)
        except ValueError:
            return
        command = payload.get("command")
        if command in ("stop-job", "stop-execution") and payload.get("job_id"):
            self.on_stop(str(payload["job_id"]))
        elif command == "shutdown":
            self.on_shutdown()
