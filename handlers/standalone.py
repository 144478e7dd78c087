"""Running a gateway job under a stock ``rq worker``, with no gateway runtime around it.

The gateway worker gives every run its context (``handlers.runtime.context``). A stock ``rq
worker`` runs the job function bare, so ``context_for`` builds one from the environment: the
settings and services, the agent, the session's history, the deadline (without cancellation).
``save`` then writes what the runtime's finisher would: the session's new turns and the run
record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import redis
from rq import get_current_job

from gateway.types import Envelope
from handlers import services
from handlers.agent import Run, load_agent
from handlers.config import WorkerSettings
from handlers.logs import bind
from handlers.runtime.context import RunContext
from handlers.state import runs, sessions

__all__ = ["context_for", "save"]

logger = logging.getLogger("handlers.standalone")
_BACKGROUND: set[asyncio.Future[None]] = set()


def context_for(envelope: Envelope, *, session_key: Callable[[Envelope], str]) -> RunContext:
    """A context for a job run by a stock RQ worker: settings-driven, no cancellation."""
    shared = services.for_settings(WorkerSettings.from_environ())
    settings = shared.settings
    settings.apply_retention()
    loop = asyncio.get_running_loop()
    job = get_current_job()
    connection = job.connection if job is not None else shared.redis
    job_id = job.id if job is not None else f"{envelope['platform']}-{envelope['delivery_id']}"
    key = session_key(envelope)
    log = bind(logger, job_id=job_id, platform=envelope["platform"], delivery_id=envelope["delivery_id"])
    run = Run(
        job_id=job_id,
        delivery_id=envelope["delivery_id"],
        attempt=1,
        history=sessions.load_history(connection, key),
        deadline=time.time() + settings.run_deadline,
        log=log,
        on_progress=lambda text: _progress(context, connection, loop, text),
        services=shared,
        on_stream=lambda text: context.stream(text),
    )
    context = RunContext(
        job_id=job_id,
        session_key=key,
        agent=load_agent(settings.agent),
        run=run,
        budget=settings.run_deadline,
        standalone=connection,
    )
    return context


def save(connection: redis.Redis, context: RunContext) -> None:
    """Append the run's turns to its session and mark its record succeeded, in one transaction."""
    with connection.pipeline() as pipe:
        if context.session_key:
            sessions.append_turns(pipe, context.session_key, context.turns)
        runs.write(
            pipe,
            context.job_id,
            status="succeeded",
            reply=context.reply.text if context.reply else "",
            ended_at=runs.utcnow(),
        )
        pipe.execute()


def _progress(
    context: RunContext, connection: redis.Redis, loop: asyncio.AbstractEventLoop, text: str
) -> None:
    """Store progress, then hand it to the platform on the loop (the agent may be in a thread)."""
    runs.add_progress(connection, context.job_id, text)
    forward = context.forward_progress
    if forward is not None:
        loop.call_soon_threadsafe(_spawn, forward(text))


def _spawn(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_BACKGROUND.discard)
