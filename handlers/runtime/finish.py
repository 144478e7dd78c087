"""Ending a claim: succeeded, failed (also timed out / cancelled), retried later, or requeued.

Every ending is one Redis transaction guarded by ``WATCH held:<job>``: it commits only while this
claim still holds the job, so a worker that was presumed dead and reaped cannot finish a job
another worker now runs. The RQ side mirrors RQ's own worker: status, ``Result``, the finished /
failed / scheduled registries, the execution record and the worker's counters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import orjson
import redis
from redis.client import Pipeline
from rq.defaults import RQ_KEY_PREFIX
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.results import Result
from rq.utils import now

from handlers.agent import Turn
from handlers.runtime.ledger import LOCK_MS, Claim
from handlers.runtime.scripts import HANDOFF, SETTLE_REPLY
from handlers.state import keys, runs, sessions
from handlers.state.inbox import Inbox
from handlers.state.replies import ANSWERED

__all__ = ["FINISHED_KEPT", "Finisher"]

logger = logging.getLogger("handlers.runtime")

_WATCH_RETRIES = 20
FINISHED_KEPT = 600  # seconds RQ keeps a finished job (rq info, debugging); the run record keeps its outcome


class Finisher:
    """Commits the end of claims for one worker (``worker_key`` is its RQ worker hash)."""

    def __init__(self, connection: redis.Redis, *, worker_name: str, worker_key: str) -> None:
        self.connection = connection
        self.worker_name = worker_name
        self.worker_key = worker_key
        self._handoff = connection.register_script(HANDOFF)
        self._settle_reply = connection.register_script(SETTLE_REPLY)
        self._inbox = Inbox(connection)

    def succeed(self, claim: Claim, result: Mapping[str, Any], *, reply: str, turns: Iterable[Turn]) -> bool:
        """Finished: RQ ``finished``, history appended, session handed on, the run record updated.

        What the run produced is kept once, in its run record (reply, accounting). RQ keeps the
        finished job only briefly (``FINISHED_KEPT``), without its envelope (no retry needs it
        now) and without a ``Result`` (a Redis Stream: 4.7 KB each, for what the record holds);
        the delivery's reply marker keeps only ``answered`` (for a stray rerun to skip). Beyond the
        record, what stays is the claim, for deduplication. Failures keep RQ's ``Result`` with the
        traceback and the envelope, for ``retry``.
        """
        job = claim.job
        result_ttl = min(job.get_result_ttl(default_ttl=FINISHED_KEPT), FINISHED_KEPT)

        def steps(pipe: Pipeline) -> None:
            job.set_status(JobStatus.FINISHED, pipeline=pipe)
            job.save(pipeline=pipe, include_meta=False, include_result=False)
            pipe.hset(job.key, "data", orjson.dumps([job.func_name, None, [], {}]))
            self._settle_reply(keys=[keys.reply(job.id)], args=[ANSWERED], client=pipe)
            FinishedJobRegistry(queue=claim.queue).add(job, result_ttl, pipeline=pipe)
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            pipe.hincrby(self.worker_key, "successful_job_count", 1)
            if claim.session_key is not None:
                sessions.append_turns(pipe, claim.session_key, turns)
            self._release_session(pipe, claim)
            accounting = result.get("accounting")
            runs.write(
                pipe,
                job.id,
                status="succeeded",
                reply=reply,
                error=None,
                note=result.get("note"),  # what the run could not do (credentials unset), else none
                accounting=orjson.dumps(accounting).decode() if accounting else None,
                **_ended(claim),
            )

        return self._commit(claim, steps)

    def fail(self, claim: Claim, *, status: runs.Status, reason: str, detail: str | None = None) -> bool:
        """Failed, timed out or cancelled: into RQ's failed registry with ``reason``; not retried.

        ``detail`` (a traceback) goes to RQ's failure record instead of ``reason`` when given.
        """
        job = claim.job
        rq_status = JobStatus.STOPPED if status == "cancelled" else JobStatus.FAILED

        def steps(pipe: Pipeline) -> None:
            job.set_status(rq_status, pipeline=pipe)
            exc_string = f"{reason}\n\n{detail}" if detail else reason
            FailedJobRegistry(queue=claim.queue).add(
                job, ttl=job.failure_ttl, exc_string=exc_string, pipeline=pipe
            )
            Result.create_failure(
                job, job.failure_ttl, exc_string=exc_string, **self._ids(claim), pipeline=pipe
            )
            pipe.hincrby(self.worker_key, "failed_job_count", 1)
            self._release_session(pipe, claim)
            runs.write(pipe, job.id, status=status, error=reason, **_ended(claim))

        return self._commit(claim, steps)

    def retry_later(self, claim: Claim, *, delay: float, reason: str) -> bool:
        """Transient failure: RQ ``scheduled`` (ScheduledJobRegistry) for ``delay`` s; keeps its session."""
        job = claim.job
        when = now() + timedelta(seconds=delay)

        def steps(pipe: Pipeline) -> None:
            job.ended_at = now()
            claim.queue.schedule_job(job, when, pipeline=pipe)
            pipe.hincrby(self.worker_key, "failed_job_count", 1)
            pipe.hincrby(keys.run(job.id), "retries", 1)
            runs.write(
                pipe,
                job.id,
                status="retrying",
                error=reason,
                next_attempt_at=when.isoformat(),
                **_ended(claim),
            )

        return self._commit(claim, steps)

    def requeue(self, claim: Claim, *, note: str) -> bool:
        """Put the job back at the front of its queue (drain); it keeps its session."""
        job = claim.job

        def steps(pipe: Pipeline) -> None:
            job.set_status(JobStatus.QUEUED, pipeline=pipe)
            claim.queue.push_job_id(job.id, pipeline=pipe, at_front=True)
            runs.write(pipe, job.id, status="queued", note=note, started_at=None)

        return self._commit(claim, steps)

    def _commit(self, claim: Claim, steps: Callable[[Pipeline], None]) -> bool:
        """Run ``steps`` in one transaction if this claim still holds the job; False if it does not."""
        held = keys.held(claim.job_id)
        with self.connection.pipeline() as pipe:
            for _ in range(_WATCH_RETRIES):
                try:
                    pipe.watch(held)  # type: ignore[no-untyped-call]
                    if pipe.get(held) != claim.token.encode():
                        pipe.reset()
                        logger.warning(
                            "claim lost before finishing", extra={"fields": {"job_id": claim.job_id}}
                        )
                        return False
                    pipe.multi()
                    pipe.delete(held)
                    pipe.srem(keys.claimed(self.worker_name), claim.job_id)
                    if claim.execution is not None:
                        claim.execution.delete(job=claim.job, pipeline=pipe)
                    claim.job.ended_at = claim.job.ended_at or now()
                    steps(pipe)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue
        return False

    def _release_session(self, pipe: Pipeline, claim: Claim) -> None:
        if claim.session_key is None:
            return
        sid = sessions.session_id(claim.session_key)
        # Follow-ups it read are done, the others run on their own: decided with this ending.
        self._inbox.settle(pipe, claim.job_id, sid, read=claim.mailbox.read, kept=FINISHED_KEPT)
        self._handoff(
            keys=[keys.session_lock(sid), keys.session_wait(sid), keys.SESSIONS_WAITING],
            args=[claim.job_id, RQ_KEY_PREFIX, LOCK_MS, sid],
            client=pipe,
        )

    def _ids(self, claim: Claim) -> dict[str, Any]:
        execution = claim.execution
        return {
            "worker_name": self.worker_name,
            "execution_id": execution.id if execution else None,
            "execution_started_at": execution.created_at if execution else None,
            "execution_ended_at": claim.job.ended_at,
        }


def _ended(claim: Claim) -> dict[str, object]:
    return {"ended_at": runs.utcnow(), "duration": round(time.time() - claim.started_at, 3)}
