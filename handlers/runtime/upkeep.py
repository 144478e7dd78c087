"""What a worker does on a timer: heartbeats, the reaper, due retries, orphaned sessions.

- ``heartbeat`` renews this worker's lease (``gateway:worker:<name>:lease``, TTL ``lease_ttl``),
  RQ's worker hash (so ``rq info`` lists it) and the heartbeat of every RQ execution it runs.
  It returns False when this worker was reaped meanwhile: its jobs now belong to others.
- ``reap`` requeues, at the front of their queues, the jobs of every worker whose lease
  expired. The Lua script re-checks the lease and empties the claimed set in one step, so
  exactly one reaper wins per dead worker. Right after a Redis outage every lease may have
  expired while every worker is alive: no worker reaps until the others had time to renew
  (``REAP_HOLD``), so live workers keep their runs.
- ``release_strays`` requeues what this worker holds but does not run: a claim made by a Lua
  call whose answer was lost to an outage.
- ``move_due_retries`` moves due jobs from RQ's ScheduledJobRegistry back to their queue with
  RQ's own scheduler code, under a per-queue mover lock of our own with a short TTL
  (``MOVER_TTL``): a mover that dies delays due retries by seconds, not by the 61 s of RQ's
  scheduler lock.
- ``unstick_sessions`` hands a session to its oldest parked event when the holder is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import redis
from rq.defaults import RQ_KEY_PREFIX
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.scheduler import RQScheduler
from rq.scripts import ACQUIRE_OR_REFRESH_LOCK_SCRIPT, RELEASE_LOCK_SCRIPT
from rq.serializers import JSONSerializer
from rq.utils import as_text, now
from rq.worker import BaseWorker, WorkerStatus

from handlers.runtime.ledger import LOCK_MS, Claim
from handlers.runtime.scripts import HANDOFF, LEASE, REAP, RELEASE
from handlers.state import keys, runs

__all__ = ["MOVER_TTL", "Upkeep"]

logger = logging.getLogger("handlers.runtime")

_UNSTICK_BATCH = 100
MOVER_TTL = 3
"""Seconds a retry mover's lock outlives its holder (renewed every second while it lives)."""
_ACQUIRED, _REFRESHED = 1, 2  # what RQ's acquire-or-refresh script answers


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
        self._release = connection.register_script(RELEASE)
        self._handoff = connection.register_script(HANDOFF)
        self._take_mover = connection.register_script(ACQUIRE_OR_REFRESH_LOCK_SCRIPT)
        self._drop_mover = connection.register_script(RELEASE_LOCK_SCRIPT)
        self._movers: set[str] = set()
        self._outage_at = float("-inf")
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
        for queue in self._movers:
            self._drop_mover(keys=[keys.retry_mover(queue)], args=[self.name])
        self._movers.clear()

    def saw_outage(self) -> None:
        """Note that a Redis call of this worker just failed (``reap`` waits after outages)."""
        self._outage_at = time.monotonic()

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
        """Requeue the jobs of workers whose lease expired; returns ``{worker: jobs requeued}``.

        Nothing is reaped while ``reap_hold`` says the others may not have renewed yet.
        """
        reaped: dict[str, int] = {}
        if self.reap_hold():
            return reaped
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
                keys.EVENTS,
            ],
            args=[
                name,
                RQ_KEY_PREFIX,
                keys.PREFIX,
                "1" if force else "0",
                note,
                runs.utcnow(),
                runs.retention(),
                runs.MAX_EVENTS,
                runs.EVENTS_KEPT,
            ],
        )
        if count > 0:
            logger.warning(
                "requeued held jobs", extra={"fields": {"worker": name, "jobs": count, "why": note}}
            )
        return int(count)

    def reap_hold(self) -> bool:
        """True while reaping would take runs from live workers: Redis just came back.

        After an outage, leases expired during it; a live worker renews within a heartbeat, so
        reaping waits a lease TTL after this worker's last failed call, or after Redis started
        (its ``uptime_in_seconds``: a restart this worker may not have noticed).
        """
        if time.monotonic() - self._outage_at < self.lease_ttl:
            return True
        try:
            uptime = int(self.connection.info("server").get("uptime_in_seconds", 1 << 30))
        except redis.ResponseError:  # INFO refused (managed Redis): rely on our own failures
            return False
        return uptime <= self.lease_ttl + 1

    def release_strays(self, running: Iterable[str]) -> int:
        """Requeue jobs in this worker's claimed set that it does not run; returns how many.

        Call only while no claim is being made (the worker's take loop does), so every claim
        this worker still means to run is in ``running``.
        """
        strays = {as_text(raw) for raw in self.connection.smembers(keys.claimed(self.name))} - set(running)
        if not strays:
            return 0
        note = f"requeued: worker {self.name} lost track of its claim in a Redis outage"
        count = int(
            self._release(
                keys=[keys.claimed(self.name), keys.EVENTS],
                args=[
                    self.name,
                    RQ_KEY_PREFIX,
                    keys.PREFIX,
                    note,
                    runs.utcnow(),
                    runs.retention(),
                    runs.MAX_EVENTS,
                    runs.EVENTS_KEPT,
                    *sorted(strays),
                ],
            )
        )
        if count:
            logger.warning("requeued stray claims", extra={"fields": {"jobs": count, "why": note}})
        return count

    def move_due_retries(self) -> None:
        """Move due retries back to the queues whose mover lock this worker holds or takes."""
        owned = [name for name in self.rq_worker.queue_names() if self._hold_mover(name)]
        if owned:
            self._scheduler.prepare_registries(owned)
            self._scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    def _hold_mover(self, queue: str) -> bool:
        outcome = self._take_mover(keys=[keys.retry_mover(queue)], args=[self.name, MOVER_TTL])
        if outcome in (_ACQUIRED, _REFRESHED):
            self._movers.add(queue)
            return True
        self._movers.discard(queue)
        return False

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
