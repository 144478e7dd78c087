"""What a worker does on a timer: heartbeats, the reaper, due retries, orphaned sessions.

- ``heartbeat`` renews this worker's lease (``gateway:worker:<name>:lease``, TTL ``lease_ttl``),
  RQ's worker hash (so ``rq info`` lists it) and the heartbeat of every RQ execution it runs.
  It returns False when this worker was reaped meanwhile: its jobs now belong to others.
- ``reap`` requeues, at the front of their queues, the jobs of every worker whose lease
  expired. The Lua script re-checks the lease and empties the claimed set in one step, so
  exactly one reaper wins per dead worker.
- ``move_due_retries`` moves due jobs from RQ's ScheduledJobRegistry back to their queue with
  RQ's own scheduler, under RQ's per-queue scheduler lock (one mover at a time).
- ``unstick_sessions`` hands a session to its oldest parked event when the holder is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from rq.defaults import RQ_KEY_PREFIX
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.utils import as_text, now
from rq.worker import BaseWorker, WorkerStatus

from handlers.runtime.ledger import LOCK_MS, Claim
from handlers.runtime.scripts import HANDOFF, LEASE, REAP
from handlers.state import keys, runs

__all__ = ["Upkeep"]

logger = logging.getLogger("handlers.runtime")

_UNSTICK_BATCH = 100


class Upkeep:
    """Timer-driven maintenance for one worker; every method is synchronous (I/O threads)."""

    def __init__(
        self, connection: redis.Redis, *, rq_worker: BaseWorker, lease_ttl: float, execution_ttl: int
    ) -> None:
        self.connection = connection
        self.rq_worker = rq_worker
        self.name = rq_worker.name
        self.lease_ttl = lease_ttl
        self.execution_ttl = execution_ttl
        self._lease = connection.register_script(LEASE)
        self._reap = connection.register_script(REAP)
        self._handoff = connection.register_script(HANDOFF)
        self._scheduler = RQScheduler(
            rq_worker.queue_names(),
            connection=connection,
            serializer=JSONSerializer,
            name=f"{self.name}-scheduler",
        )
        # RQScheduler installs its own plain-text handler; our JSON root handler is enough.
        logging.getLogger("rq.scheduler").handlers.clear()

    def register(self) -> None:
        """Take the lease and register with RQ (``rq info`` lists this worker from now on)."""
        self.rq_worker.register_birth()  # type: ignore[no-untyped-call]
        self._lease(keys=[keys.lease(self.name), keys.WORKERS], args=[self.name, self._lease_ms, "1"])
        self.rq_worker.set_state(WorkerStatus.IDLE)

    def unregister(self) -> None:
        """Drop the lease and register RQ's worker death; call after every claim has ended."""
        self.connection.delete(keys.lease(self.name))
        self.connection.srem(keys.WORKERS, self.name)
        self.rq_worker.register_death()  # type: ignore[no-untyped-call]
        self._scheduler.release_locks()  # type: ignore[no-untyped-call]

    def heartbeat(self, running: Iterable[Claim]) -> bool:
        """Renew the lease and every running execution; False if this worker was reaped."""
        if not self._lease(keys=[keys.lease(self.name), keys.WORKERS], args=[self.name, self._lease_ms, "0"]):
            return False
        claims = [claim for claim in running if claim.execution is not None]
        with self.connection.pipeline(transaction=False) as pipe:
            self.rq_worker.heartbeat(int(self.lease_ttl) + 1, pipeline=pipe)
            self.rq_worker.set_state(WorkerStatus.BUSY if claims else WorkerStatus.IDLE, pipeline=pipe)
            for claim in claims:
                assert claim.execution is not None
                claim.execution.heartbeat(claim.job.started_job_registry, self.execution_ttl, pipeline=pipe)
                claim.job.heartbeat(now(), self.execution_ttl, pipeline=pipe)
            pipe.execute()
        return True

    def reregister(self) -> None:
        """After being reaped: take a fresh lease so new claims are covered again."""
        self._lease(keys=[keys.lease(self.name), keys.WORKERS], args=[self.name, self._lease_ms, "1"])

    def cancel_requested(self, job_ids: list[str]) -> list[str]:
        """Which of ``job_ids`` have a cancellation flag set (the pub/sub message may be missed)."""
        if not job_ids:
            return []
        flags = self.connection.mget([keys.cancel(job_id) for job_id in job_ids])
        return [job_id for job_id, flag in zip(job_ids, flags, strict=True) if flag]

    def reap(self) -> dict[str, int]:
        """Requeue the jobs of workers whose lease expired; returns ``{worker: jobs requeued}``."""
        reaped: dict[str, int] = {}
        for raw in self.connection.smembers(keys.WORKERS):
            name = as_text(raw)
            if name != self.name and not self.connection.exists(keys.lease(name)):
                count = self.reap_worker(name, note=f"requeued: worker {name} stopped heartbeating")
                if count >= 0:
                    reaped[name] = count
        return reaped

    def reap_worker(self, name: str, *, note: str, force: bool = False) -> int:
        """Requeue what ``name`` holds (only if its lease expired, unless ``force``); -1 if alive."""
        count = self._reap(
            keys=[
                keys.lease(name),
                keys.claimed(name),
                keys.WORKERS,
                WORKER_EXECUTIONS_KEY_TEMPLATE.format(name),
            ],
            args=[
                name,
                RQ_KEY_PREFIX,
                keys.PREFIX,
                "1" if force else "0",
                note,
                runs.utcnow(),
                runs.RUN_TTL,
                runs.MAX_EVENTS,
            ],
        )
        if count > 0:
            logger.warning(
                "requeued held jobs", extra={"fields": {"worker": name, "jobs": count, "why": note}}
            )
        return int(count)

    def move_due_retries(self) -> None:
        """Move due retries back to their queue, if this worker holds RQ's scheduler lock."""
        if self._scheduler.acquire_locks():  # type: ignore[no-untyped-call]
            self._scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    def unstick_sessions(self) -> None:
        """Hand sessions whose holder is gone (finished elsewhere, deleted) to their next event."""
        cursor, members = self.connection.sscan(keys.SESSIONS_WAITING, 0, count=_UNSTICK_BATCH)
        for raw in members[:_UNSTICK_BATCH]:
            sid = as_text(raw)
            self._handoff(
                keys=[keys.session_lock(sid), keys.session_wait(sid), keys.SESSIONS_WAITING],
                args=["", RQ_KEY_PREFIX, LOCK_MS, sid],
            )

    @property
    def _lease_ms(self) -> int:
        return int(self.lease_ttl * 1000)
