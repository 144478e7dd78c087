"""Taking jobs: claim the queue's head atomically, then start it the way RQ does.

A claim puts the job id in this worker's claimed set and writes ``held:<job>`` = this claim's
token in the same Lua call that pops it, so a job is always either in a queue, parked in its
session, or held by exactly one worker. ``start`` then records an RQ ``Execution`` (which puts
the job in ``StartedJobRegistry``), sets status ``started`` and bumps the run's attempt count.
All functions here are synchronous: the worker calls them in its I/O threads.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from rq.defaults import RQ_KEY_PREFIX
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import as_text

from handlers.agent import Turn
from handlers.messages import Mailbox
from handlers.runtime.scripts import CLAIM
from handlers.runtime.steering import Router, load
from handlers.state import keys, runs, sessions
from handlers.state.inbox import Routing

__all__ = ["HELD_TTL", "LOCK_MS", "Claim", "Ledger", "SessionKey", "session_key_for"]

logger = logging.getLogger("handlers.runtime")

SessionKey = Callable[[Mapping[str, Any]], "str | None"]
"""The session of a queued envelope (``handlers.registry.session_key``), given when the worker starts."""

HELD_TTL = 7 * 24 * 3600
# A session lock names its holder job; liveness comes from that job's RQ status, so the TTL
# is only a backstop against leaked keys, not what frees a dead holder's session.
LOCK_MS = 24 * 3600 * 1000
_MAX_PEEKS = 64


@dataclass
class Claim:
    """One job this worker took, from claim to finish."""

    job: Job
    queue: Queue
    token: str
    session_key: str | None
    execution: Execution | None = None
    attempt: int = 0
    retries: int = 0
    history: tuple[Turn, ...] = ()
    cancel_requested: bool = False
    started_at: float = field(default_factory=time.time)
    mailbox: Mailbox = field(default_factory=Mailbox)
    """The follow-ups this attempt received (``handlers.runtime.steering`` fills it)."""

    @property
    def job_id(self) -> str:
        """The RQ job id (``<platform>-<escaped delivery id>``)."""
        return self.job.id


class Ledger:
    """Claims and starts jobs for one worker, on RQ's keys and registries."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        worker_name: str,
        queues: list[Queue],
        execution_ttl: int,
        session_key: SessionKey,
        router: Router | None = None,
    ) -> None:
        self.connection = connection
        self.worker_name = worker_name
        self.queues = queues
        self.execution_ttl = execution_ttl
        self.session_key = session_key
        self.router = router
        self._claim = connection.register_script(CLAIM)

    def take(self, timeout: float, stopping: threading.Event | None = None) -> Claim | None:
        """Claim the next runnable job, waiting up to ``timeout`` s; ``None`` if there is none.

        Jobs whose session is busy are parked on the way and do not count. Once ``stopping``
        is set no further claim is made, even after a wait that saw new work.
        """
        deadline = time.monotonic() + timeout
        for _ in range(_MAX_PEEKS):
            if stopping is not None and stopping.is_set():
                return None
            head = self._first_head()
            if head is None:
                if not self._wait_for_work(deadline - time.monotonic()):
                    return None
                continue
            claim = self._try_claim(*head)
            if isinstance(claim, Claim):
                return claim
            if time.monotonic() >= deadline:
                return None
        return None

    def take_followups(self, limit: int = 20) -> list[Claim]:
        """While every slot is busy: route the follow-ups at the heads of the queues.

        Each is steered into its run's inbox, or claimed when it needs no agent (closing one
        that was read, a Stop, a "busy" notice): those claims are returned, to run outside the
        concurrency limit. Stops at each queue's first head that needs a slot.
        """
        taken: list[Claim] = []
        for queue in self.queues if self.router is not None else ():
            for _ in range(limit):
                head = self.connection.lindex(queue.key, 0)
                outcome = self._try_claim(queue, as_text(head), slotless=True) if head else None
                if outcome is None:
                    break
                if isinstance(outcome, Claim):
                    taken.append(outcome)
        return taken

    def start(self, claim: Claim) -> None:
        """Mark the claimed job started (RQ execution, status, run record); load its history and
        the follow-ups already in its inbox."""
        job = claim.job
        with self.connection.pipeline() as pipe:
            claim.execution = Execution.create(
                job, self.execution_ttl, pipeline=pipe, worker_name=self.worker_name
            )
            job.prepare_for_execution(self.worker_name, pipeline=pipe)
            pipe.persist(job.key)  # RQ keeps a running job's hash from expiring
            first = len(pipe)
            pipe.hincrby(keys.run(job.id), "attempts", 1)
            pipe.hget(keys.run(job.id), "retries")
            pipe.exists(keys.cancel(job.id))
            runs.write(
                pipe,
                job.id,
                status="running",
                started_at=runs.utcnow(),
                worker=self.worker_name,
                ended_at=None,
                duration=None,
                next_attempt_at=None,
                note=None,  # "waiting for an earlier event..." no longer holds once it runs
                **_describe(job, claim.session_key),
            )
            results = pipe.execute()
        claim.attempt, claim.retries = int(results[first]), int(results[first + 1] or 0)
        claim.cancel_requested = bool(results[first + 2])
        claim.started_at = time.time()
        if claim.session_key is not None:
            claim.history = sessions.load_history(self.connection, claim.session_key)
        if self.router is not None:  # follow-ups already waiting are there when the agent starts
            load(self.router.inbox, claim.job_id, claim.mailbox)

    def queued_work(self) -> int:
        """Jobs waiting in this worker's queues or scheduled for a retry (for ``--burst``)."""
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.llen(queue.key)
                pipe.zcard(queue.scheduled_job_registry.key)
            return sum(int(n) for n in pipe.execute())

    def _first_head(self) -> tuple[Queue, str] | None:
        for queue in self.queues:
            head = self.connection.lindex(queue.key, 0)
            if head is not None:
                return queue, as_text(head)
        return None

    def _wait_for_work(self, timeout: float) -> bool:
        """Block until a queue may have work (True) or ``timeout`` passes (False)."""
        if timeout <= 0:
            return False
        if len(self.queues) == 1:
            key = self.queues[0].key
            # BLMOVE from a list to its own tail and back is a no-op that blocks until the
            # list is non-empty: a wake-up that takes nothing (the Lua claim does the taking).
            return self.connection.blmove(key, key, min(timeout, 1.0), "RIGHT", "RIGHT") is not None  # type: ignore[arg-type]
        time.sleep(min(timeout, 0.05))
        return True

    def _try_claim(self, queue: Queue, job_id: str, *, slotless: bool = False) -> Claim | bool | None:
        """Claim ``job_id``, the head of ``queue``: the claim, or False when it was parked,
        steered or dropped on the way. ``slotless``: only follow-ups that need no slot, else
        ``None`` (nothing done)."""
        job = _fetch(self.connection, job_id)
        if job is None:
            # Like RQ's dequeue: an id whose job hash is gone (or unreadable) is dropped.
            self.connection.lrem(queue.key, 1, job_id)
            logger.warning("dropped a queue entry without a job", extra={"fields": {"job_id": job_id}})
            return False
        key = session_key_for(job, self.session_key)
        routing = self.router.route(queue, job, key) if self.router is not None and key else None
        if slotless and (routing is None or routing.verdict == "claim"):
            return None
        if routing is not None and routing.verdict != "claim":
            if routing.verdict != "alone":
                return self._routed(job_id, routing)
            key = None  # read, Stop, busy: claimed without the conversation, which stays with its run
        return self._claim_job(queue, job, key)

    def _claim_job(self, queue: Queue, job: Job, key: str | None) -> Claim | bool:
        job_id = job.id
        sid = sessions.session_id(key) if key is not None else ""
        token = f"{self.worker_name}|{uuid.uuid4().hex}"
        arrival = job.created_at.timestamp() if job.created_at else time.time()
        outcome = self._claim(
            keys=[
                queue.key,
                Job.key_for(job_id),
                keys.held(job_id),
                keys.claimed(self.worker_name),
                keys.session_lock(sid),
                keys.session_wait(sid),
                keys.SESSIONS_WAITING,
            ],
            args=[
                job_id,
                token,
                repr(arrival),
                "1" if key is not None else "0",
                LOCK_MS,
                sid,
                repr(time.time()),
                RQ_KEY_PREFIX,
                HELD_TTL,
            ],
        )
        verdict = as_text(outcome[0])
        if verdict == "parked":
            runs.write(
                self.connection, job_id, status="queued", note="waiting for an earlier event of its session"
            )
        elif verdict in ("gone", "skip"):
            logger.warning(
                "dropped a stale queue entry", extra={"fields": {"job_id": job_id, "why": verdict}}
            )
        if verdict != "claimed":
            return False
        return Claim(job=job, queue=queue, token=token, session_key=key)

    def _routed(self, job_id: str, routing: Routing) -> bool:
        if routing.verdict == "steered":
            note = f"follow-up handed to run {routing.run}, which is working on its conversation"
            runs.write(self.connection, job_id, status="queued", note=note)
        return False


def session_key_for(job: Job, session_key: SessionKey) -> str | None:
    """The session of ``job``: ``session_key`` of its envelope, if it has one."""
    try:
        envelope = job.args[0] if job.args else None
        return session_key(envelope) if isinstance(envelope, dict) else None
    except Exception:  # noqa: BLE001 - an unreadable job runs without a session and fails there
        logger.warning("no session key for job", extra={"fields": {"job_id": job.id}}, exc_info=True)
        return None


def _fetch(connection: redis.Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except Exception:  # noqa: BLE001 - a missing or unreadable job is dropped by the claim script
        return None


def _describe(job: Job, session_key: str | None) -> dict[str, object]:
    try:
        envelope = job.args[0] if job.args and isinstance(job.args[0], dict) else {}
    except Exception:  # noqa: BLE001 - undecodable job data fails later, in the job itself
        envelope = {}
    return {
        "platform": envelope.get("platform"),
        "delivery_id": envelope.get("delivery_id"),
        "event": envelope.get("event"),
        "session": session_key,
        "queued_at": job.enqueued_at.isoformat() if job.enqueued_at else None,
    }
