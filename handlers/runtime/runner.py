"""Running one claimed job inside the worker's event loop, from start to its recorded end.

``launch`` starts a task per claim. The task marks the job started, builds the ``RunContext``
(the ``Run`` the agent sees, the deadline, the stop signal), awaits the job function with that
context set, supervises it (a hard limit of deadline + ``HANDLER_MARGIN``, prompt stops), and
ends the claim through the ``Finisher`` according to what happened.

Only this worker may end its claims, so an ending that Redis cannot take (an outage) is not
dropped: it is written again until Redis answers (``ride_out``), and the claim is released
then, by this worker, with no restart and no reaper involved.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from rq.job import Job

from gateway import tracing
from handlers import alerts, metrics
from handlers.agent import Agent, Run
from handlers.errors import RunCancelled, RunTimedOut
from handlers.logs import BoundLogger, bind
from handlers.retry import RetryPolicy, describe
from handlers.runtime.context import AGENT_SETTLE, CURRENT, RunContext, StopReason
from handlers.runtime.finish import Finisher
from handlers.runtime.ledger import Claim, Ledger
from handlers.services import Services
from handlers.state import runs
from handlers.state.outage import ride_out

__all__ = ["HANDLER_MARGIN", "IO", "STOP_GRACE", "Active", "Runner"]

T = TypeVar("T")
IO = Callable[..., Awaitable[Any]]

logger = logging.getLogger("handlers.runtime")

# Time a job function gets after its agent's deadline to deliver or report the outcome.
HANDLER_MARGIN = 30.0
# Time a stopped job function gets to unwind before its task is cancelled.
STOP_GRACE = 3.0
# Run endings that mark the run span failed (its error.type is the status).
_FAILED = frozenset({"failed", "timed_out", "retrying", "lost"})


@dataclass
class Active:
    """A job this worker is running: its claim, its task, and its context once built."""

    claim: Claim
    task: asyncio.Task[None]
    context: RunContext | None = None
    pending_stop: StopReason | None = None


class Runner:
    """Starts, supervises and ends the jobs of one worker."""

    def __init__(
        self,
        *,
        agent: Agent,
        services: Services,
        ledger: Ledger,
        finisher: Finisher,
        retry: RetryPolicy,
        deadline: float,
        io: IO,
        agent_executor: Executor,
    ) -> None:
        self.log = bind(logger, worker=ledger.worker_name)
        self._agent, self._services, self._ledger, self._finisher = agent, services, ledger, finisher
        self._retry, self._deadline, self._io = retry, deadline, io
        self._agent_executor = agent_executor
        self._active: dict[str, Active] = {}
        self._progress: dict[str, asyncio.Task[None]] = {}
        metrics.runs_in_flight(lambda: len(self._active))

    @property
    def active(self) -> int:
        """How many jobs run right now."""
        return len(self._active)

    def claims(self) -> list[Claim]:
        """The claims of the running jobs."""
        return [active.claim for active in self._active.values()]

    def running_ids(self) -> list[str]:
        """The job ids this worker runs (or is ending) right now."""
        return list(self._active)

    def launch(self, claim: Claim, *, on_done: Callable[[], None]) -> None:
        """Run ``claim`` in its own task; ``on_done`` is called when the task ends."""
        task = asyncio.create_task(self._execute(claim), name=f"job:{claim.job_id}")
        self._active[claim.job_id] = Active(claim, task)

        def done(_: asyncio.Task[None]) -> None:
            self._active.pop(claim.job_id, None)
            on_done()

        task.add_done_callback(done)

    def stop(self, job_id: str, reason: StopReason = "cancelled") -> None:
        """Stop ``job_id`` if it runs here (cancellation by default)."""
        active = self._active.get(job_id)
        if active is None:
            return
        self.log.info("stop requested", extra={"fields": {"job_id": job_id, "reason": reason}})
        if active.context is not None:
            active.context.stop(reason)
        elif active.pending_stop is None:
            active.pending_stop = reason

    def stop_all(self, reason: StopReason) -> None:
        """Stop every running job for ``reason``."""
        for job_id in list(self._active):
            self.stop(job_id, reason)

    async def drain(self, grace: float) -> None:
        """Let running jobs finish for ``grace`` s, then stop and requeue the rest."""
        tasks = [active.task for active in self._active.values()]
        if not tasks:
            return
        self.log.info("draining", extra={"fields": {"running": len(tasks), "grace": grace}})
        await asyncio.wait(tasks, timeout=grace)
        self.stop_all("drain")
        left = [active.task for active in self._active.values()]
        if left:
            await asyncio.wait(left, timeout=AGENT_SETTLE + STOP_GRACE + 5)

    async def _execute(self, claim: Claim) -> None:
        envelope = _envelope(claim.job)
        with tracing.span(
            f"process {claim.queue.name}",
            kind="consumer",
            parent=tracing.parent_of(envelope),  # the ingress span, or a new trace
            attributes=_run_attributes(claim, envelope),
        ) as span:
            status = await self._run_or_requeue(claim)
            span.set({"gateway.attempt": claim.attempt, "gateway.run.status": status})
            if status in _FAILED:
                span.fail(status)

    async def _run_or_requeue(self, claim: Claim) -> str:
        try:
            return await self._run_claim(claim)
        except Exception:  # noqa: BLE001 - never lose a claim to a bug here: hand it back
            self.log.exception("run failed inside the runtime", extra={"fields": {"job_id": claim.job_id}})
            await self._end(self._finisher.requeue, claim, note="requeued: runtime error")
            return "requeued"

    async def _run_claim(self, claim: Claim) -> str:
        log = _bind_run(claim)
        try:
            await self._io(self._ledger.start, claim)
        except Exception:  # noqa: BLE001 - Redis trouble: hand the job back rather than strand it
            log.exception("could not start the run; requeueing it")
            await self._end(self._finisher.requeue, claim, note="requeued: could not start")
            return "requeued"
        log = _bind_run(claim)
        active = self._active[claim.job_id]
        if claim.cancel_requested or active.pending_stop == "cancelled":
            await self._end(
                self._finisher.fail, claim, status="cancelled", reason="cancelled before it started"
            )
            _ended(log, claim, "cancelled", 0.0)
            return "cancelled"
        context = self._context(claim, log)
        active.context = context
        if active.pending_stop is not None:
            context.stop(active.pending_stop)
        log.info("run started")
        job_task = self._start_job(claim.job, context)
        await self._supervise(job_task, context)
        status = await self._conclude(claim, context, job_task, log)
        _ended(log, claim, status, time.time() - claim.started_at)
        return status

    def _context(self, claim: Claim, log: BoundLogger) -> RunContext:
        loop = asyncio.get_running_loop()
        run = Run(
            job_id=claim.job_id,
            delivery_id=_envelope(claim.job).get("delivery_id", ""),
            attempt=claim.attempt,
            history=claim.history,
            deadline=time.time() + self._deadline,
            log=log,
            on_progress=lambda text: loop.call_soon_threadsafe(self._record_progress, claim.job_id, text),
            services=self._services,
            mailbox=claim.mailbox,
            on_stream=lambda text: context.stream(text),
        )
        context = RunContext(
            job_id=claim.job_id,
            session_key=claim.session_key,
            agent=self._agent,
            run=run,
            budget=self._deadline,
            agent_executor=self._agent_executor,
            will_retry=lambda error: self._retry.decide(error, retries_so_far=claim.retries).retry,
        )
        return context

    def _record_progress(self, job_id: str, text: str) -> None:
        """Store progress in order (each write waits for the previous one of the same run)."""
        previous = self._progress.get(job_id)
        active = self._active.get(job_id)
        forward = active.context.forward_progress if active and active.context else None

        async def write() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            try:
                await self._io(runs.add_progress, self._ledger.connection, job_id, text)
            except redis.RedisError as exc:  # progress is best effort: the run goes on without it
                self.log.warning(
                    "progress not recorded", extra={"fields": {"job_id": job_id, "error": describe(exc)}}
                )
            if forward is not None:
                await forward(text)

        task = asyncio.create_task(write())
        self._progress[job_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._progress.get(job_id) is done:
                del self._progress[job_id]

        task.add_done_callback(forget)

    def _start_job(self, job: Job, context: RunContext) -> asyncio.Task[Any]:
        scope = contextvars.copy_context()
        scope.run(CURRENT.set, context)
        return asyncio.create_task(self._call_job(job, scope), context=scope)

    async def _call_job(self, job: Job, scope: contextvars.Context) -> Any:
        function = job.func
        if inspect.iscoroutinefunction(function):
            return await function(*job.args, **job.kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._agent_executor, lambda: scope.run(function, *job.args, **job.kwargs)
        )

    async def _supervise(self, job_task: asyncio.Task[Any], context: RunContext) -> None:
        stopped = asyncio.ensure_future(context.stopped.wait())
        await asyncio.wait(
            {job_task, stopped}, timeout=context.budget + HANDLER_MARGIN, return_when=asyncio.FIRST_COMPLETED
        )
        stopped.cancel()
        if job_task.done():
            return
        context.stop("timed_out")  # keeps an earlier reason
        await asyncio.wait({job_task}, timeout=AGENT_SETTLE + STOP_GRACE)
        if not job_task.done():
            job_task.cancel()
            await asyncio.wait({job_task}, timeout=1.0)

    async def _conclude(
        self, claim: Claim, context: RunContext, job_task: asyncio.Task[Any], log: BoundLogger
    ) -> str:
        finished = job_task.done() and not job_task.cancelled()
        error = job_task.exception() if finished else None
        if finished and error is None:
            reply = context.reply.text if context.reply else ""
            ok = await self._end(
                self._finisher.succeed, claim, _json_safe(job_task.result()), reply=reply, turns=context.turns
            )
            return "succeeded" if ok else "lost"
        reason = context.stop_reason
        if reason in ("drain", "lease_lost"):
            ok = await self._end(self._finisher.requeue, claim, note=f"requeued: {reason}")
            return "requeued" if ok else "lost"
        if reason == "cancelled" or isinstance(error, RunCancelled):
            return await self._fail(claim, "cancelled", "cancelled", None)
        if reason == "timed_out" or isinstance(error, RunTimedOut):
            timeout = (
                error if isinstance(error, RunTimedOut) else RunTimedOut(context.budget, context.run.messages)
            )
            return await self._fail(claim, "timed_out", describe(timeout), None)
        assert error is not None
        decision = self._retry.decide(error, retries_so_far=claim.retries)
        if decision.retry:
            log.info(
                "retrying later",
                extra={"fields": {"delay": round(decision.delay, 3), "error": decision.reason}},
            )
            ok = await self._end(
                self._finisher.retry_later, claim, delay=decision.delay, reason=decision.reason
            )
            return "retrying" if ok else "lost"
        log.warning("run failed", extra={"fields": {"error": decision.reason}})
        return await self._fail(claim, "failed", decision.reason, _traceback(error))

    async def _fail(self, claim: Claim, status: runs.Status, reason: str, detail: str | None) -> str:
        ok = await self._end(self._finisher.fail, claim, status=status, reason=reason, detail=detail)
        if ok and status == "failed":
            await self._alert_failed(claim, reason)
        return status if ok else "lost"

    async def _end(self, ending: Callable[..., bool], claim: Claim, *args: Any, **kwargs: Any) -> bool:
        """Commit ``ending`` of ``claim`` (a ``Finisher`` method), waiting out a Redis outage."""
        return bool(
            await ride_out(
                lambda: self._io(ending, claim, *args, **kwargs),
                what=f"the end of {claim.job_id}",
                log=self.log,
            )
        )

    async def _alert_failed(self, claim: Claim, reason: str) -> None:
        platform = _envelope(claim.job).get("platform")
        try:
            await self._io(alerts.run_failed, self._ledger.connection, claim.job_id, platform, reason)
        except Exception:  # noqa: BLE001 - the run has ended; an alert lost to Redis is only logged
            self.log.warning("could not raise the failed run's alert", exc_info=True)


def _ended(log: BoundLogger, claim: Claim, status: str, seconds: float) -> None:
    """The run's last log line, and its count in the metrics."""
    log.info("run ended", extra={"fields": {"status": status, "duration": round(seconds, 3)}})
    metrics.count_run(_envelope(claim.job).get("platform"), status, seconds)


def _run_attributes(claim: Claim, envelope: dict[str, Any]) -> dict[str, tracing.AttributeValue]:
    """The run span's attributes at its start, as OpenTelemetry's messaging conventions name them."""
    return {
        "messaging.system": "rq",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": claim.queue.name,
        "messaging.message.id": claim.job_id,
        "gateway.platform": str(envelope.get("platform", "")),
    }


def _bind_run(claim: Claim) -> BoundLogger:
    envelope = _envelope(claim.job)
    return bind(
        logger,
        job_id=claim.job_id,
        platform=envelope.get("platform"),
        delivery_id=envelope.get("delivery_id"),
        attempt=claim.attempt,
    )


def _envelope(job: Job) -> dict[str, Any]:
    try:
        first = job.args[0] if job.args else None
    except Exception:  # noqa: BLE001 - undecodable job data
        return {}
    return first if isinstance(first, dict) else {}


def _json_safe(result: object) -> dict[str, Any]:
    value = result if isinstance(result, dict) else {"result": result}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return {"result": repr(result)}
    return value


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
