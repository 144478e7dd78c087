"""What every platform module shares: the hook interface and the body of ``handle(envelope)``.

Each ``handlers.<platform>`` module builds a ``PlatformHooks`` and its job function is
``async def handle(envelope): return await run_event(HOOKS, envelope)``. The hooks are the seam
the next issue fills with real posting (slack-sdk, PyGithub, stripe):

- ``to_event(envelope) -> Event`` and ``session_key(envelope) -> str``;
- ``is_ignored(event)``: events never worth a run (the bot's own messages);
- ``deliver(event, reply, run)``: post the reply (for now: log it; the run record keeps it);
- ``on_progress(event, text, run)`` and ``on_timeout(event, partial, run)``.

Under a stock ``rq worker`` (no gateway runtime around the job) ``run_event`` still works: it
builds a standalone context from the settings, with the deadline but without cancellation.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis
from rq import get_current_job

from gateway.config import Settings
from gateway.types import Envelope
from handlers import runs, session
from handlers.agent import Event, Reply, Run, Turn, load_agent
from handlers.errors import RunTimedOut
from handlers.logs import bind
from handlers.runtime.context import RunContext, current, execute_agent

logger = logging.getLogger("handlers.platform")


@dataclass(frozen=True)
class PlatformHooks:
    """The per-platform functions the shared run logic calls; see the module docstring."""

    name: str
    to_event: Callable[[Envelope], Event]
    is_ignored: Callable[[Event], bool]
    deliver: Callable[[Event, Reply, Run], Awaitable[None]]
    on_progress: Callable[[Event, str, Run], Awaitable[None]]
    on_timeout: Callable[[Event, tuple[str, ...], Run], Awaitable[None]]


async def run_event(hooks: PlatformHooks, envelope: Envelope) -> dict[str, Any]:
    """Turn ``envelope`` into an event, run the agent on it and deliver the reply.

    Returns the job's RQ result (JSON-safe). Raises what the agent raised, ``RunTimedOut``
    (after telling ``on_timeout``) or ``RunCancelled``; the runtime decides what follows.
    """
    context = current() or _standalone(envelope)
    event = hooks.to_event(envelope)
    run = context.run
    if hooks.is_ignored(event):
        run.log.info("event ignored", extra={"fields": {"event": event.name}})
        return {"status": "ignored"}
    context.forward_progress = lambda text: hooks.on_progress(event, text, run)
    try:
        reply = await execute_agent(context, event)
    except RunTimedOut as exc:
        await hooks.on_timeout(event, exc.partial, run)
        raise
    await hooks.deliver(event, reply, run)
    context.commit(reply, _turns(event, reply))
    if context.standalone is not None:
        _save_standalone(context.standalone, context)
    return {"status": "succeeded", "reply": reply.text}


async def log_delivery(event: Event, reply: Reply, run: Run) -> None:
    """The ``deliver`` hook until posting lands: log the reply (the run record also keeps it)."""
    run.log.info(
        "reply ready (not posted: posting lands in a later issue)",
        extra={"fields": {"reply_chars": len(reply.text), "subject": event.subject}},
    )


async def log_progress(event: Event, text: str, run: Run) -> None:
    """The ``on_progress`` hook until forwarding lands: log it (the run record keeps the text)."""
    run.log.debug("progress", extra={"fields": {"chars": len(text)}})


async def log_timeout(event: Event, partial: tuple[str, ...], run: Run) -> None:
    """The ``on_timeout`` hook until posting lands: log that the run timed out."""
    run.log.warning("run timed out", extra={"fields": {"partial_messages": len(partial)}})


def _turns(event: Event, reply: Reply) -> list[Turn]:
    asked = event.text or event.title or f"{event.name} {event.action or ''}".strip()
    at = runs.utcnow()
    return [Turn("user", asked, at, event.delivery_id), Turn("assistant", reply.text, at, event.delivery_id)]


def _standalone(envelope: Envelope) -> RunContext:
    """A context for a job run by a stock RQ worker: settings-driven, no cancellation."""
    settings = Settings.from_environ()
    job = get_current_job()
    connection = job.connection if job is not None else redis.Redis.from_url(settings.redis_url)
    job_id = job.id if job is not None else f"{envelope['platform']}-{envelope['delivery_id']}"
    key = _session_key_of(envelope)
    history = session.load_history(connection, key) if key else ()
    log = bind(logger, job_id=job_id, platform=envelope["platform"], delivery_id=envelope["delivery_id"])
    run = Run(
        job_id=job_id,
        delivery_id=envelope["delivery_id"],
        attempt=1,
        history=history,
        deadline=time.time() + settings.run_deadline,
        log=log,
        on_progress=lambda text: runs.add_progress(connection, job_id, text),
    )
    return RunContext(
        job_id=job_id,
        session_key=key,
        agent=load_agent(settings.agent),
        run=run,
        budget=settings.run_deadline,
        standalone=connection,
    )


def _session_key_of(envelope: Envelope) -> str | None:
    module = importlib.import_module(f"handlers.{envelope['platform']}")
    key_of = getattr(module, "session_key", None)
    return str(key_of(envelope)) if callable(key_of) else None


def _save_standalone(connection: redis.Redis, context: RunContext) -> None:
    with connection.pipeline() as pipe:
        if context.session_key:
            session.append_turns(pipe, context.session_key, context.turns)
        runs.write(
            pipe,
            context.job_id,
            status="succeeded",
            reply=context.reply.text if context.reply else "",
            ended_at=runs.utcnow(),
        )
        pipe.execute()
