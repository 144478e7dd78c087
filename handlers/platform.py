"""What every platform module shares: the hook interface and the body of ``handle(envelope)``.

Each ``handlers.<platform>`` module builds a ``PlatformHooks`` and its job function is
``async def handle(envelope): return await run_event(HOOKS, envelope)``. A run goes:

1. ``to_event(envelope) -> Event``; ``is_ignored(event)`` ends events never worth a run (bots,
   our own posts);
2. if ``replies.ReplyMarker`` says this delivery was already answered (a rerun after a crash),
   the stored reply is committed again and nothing is posted or run;
3. ``begin(event, run)``: show that work started (the Slack placeholder) and remember it;
4. ``enrich(event, run) -> Event``: fetch the facts the agent needs (``Event.facts``);
5. the agent runs; its progress goes to ``on_progress(event, text, run)`` through a throttled
   ``ProgressRelay`` (at most one call per ``progress_interval``, latest wins);
6. ``deliver(event, reply, run)`` posts the reply once; then the delivery is marked answered.
   On timeout ``on_timeout(event, partial, run)`` is called instead; when enrichment or the
   agent fails for good (the runtime will not retry it), ``on_failure(event, run)`` is, so
   nobody waits on a "working on it" that will never change.

Under a stock ``rq worker`` (no gateway runtime around the job) ``run_event`` still works: it
builds a standalone context from the settings, with the deadline but without cancellation.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from rq import get_current_job

from gateway.config import Settings
from gateway.types import Envelope
from handlers import runs, services, session
from handlers.agent import Event, Reply, Run, Turn, load_agent
from handlers.errors import RunCancelled, RunTimedOut
from handlers.logs import bind
from handlers.progress import ProgressRelay
from handlers.replies import ReplyMarker
from handlers.retry import describe
from handlers.runtime.context import RunContext, current, execute_agent

logger = logging.getLogger("handlers.platform")
_BACKGROUND: set[asyncio.Future[None]] = set()


async def no_begin(event: Event, run: Run) -> None:
    """The ``begin`` hook of platforms that show nothing before the answer."""


async def no_enrich(event: Event, run: Run) -> Event:
    """The ``enrich`` hook of platforms that fetch nothing before the run."""
    return event


async def no_failure_notice(event: Event, run: Run) -> None:
    """The ``on_failure`` hook of platforms that showed nothing while the run went on."""


@dataclass(frozen=True)
class PlatformHooks:
    """The per-platform functions the shared run logic calls; see the module docstring."""

    name: str
    to_event: Callable[[Envelope], Event]
    is_ignored: Callable[[Event], bool]
    deliver: Callable[[Event, Reply, Run], Awaitable[None]]
    on_progress: Callable[[Event, str, Run], Awaitable[None]]
    on_timeout: Callable[[Event, tuple[str, ...], Run], Awaitable[None]]
    begin: Callable[[Event, Run], Awaitable[None]] = no_begin
    enrich: Callable[[Event, Run], Awaitable[Event]] = no_enrich
    on_failure: Callable[[Event, Run], Awaitable[None]] = no_failure_notice
    progress_interval: float = 0.0


async def run_event(hooks: PlatformHooks, envelope: Envelope) -> dict[str, Any]:
    """Turn ``envelope`` into an event, run the agent on it and deliver the reply once.

    Returns the job's RQ result (JSON-safe). Raises what the agent or a hook raised,
    ``RunTimedOut`` (after telling ``on_timeout``) or ``RunCancelled``; the runtime decides
    what follows.
    """
    context = current() or _standalone(envelope)
    event = hooks.to_event(envelope)
    run = context.run
    if hooks.is_ignored(event):
        run.log.info("event ignored", extra={"fields": {"event": event.name}})
        return {"status": "ignored"}
    marker = reply_marker(run)
    earlier = await marker.answered()
    if earlier is not None:
        run.log.info("reply already delivered by an earlier attempt; not running again")
        _commit(context, event, earlier)
        return {"status": "succeeded", "reply": earlier.text, "already_delivered": True}
    await hooks.begin(event, run)
    try:
        event = await hooks.enrich(event, run)
        reply = await _run_agent(hooks, context, event)
    except (RunTimedOut, RunCancelled):
        raise
    except Exception as error:
        if not context.will_retry(error):
            await _notify_failure(hooks, event, run)
        raise
    await hooks.deliver(event, reply, run)
    await marker.mark_answered(reply)
    _commit(context, event, reply)
    result: dict[str, Any] = {"status": "succeeded", "reply": reply.text}
    if isinstance(reply.data.get("llm"), Mapping):
        # The LLM agent's accounting (model, steps, tokens, tool calls, latency) joins the run record.
        result["accounting"] = dict(reply.data["llm"])
    return result


def reply_marker(run: Run) -> ReplyMarker:
    """The exactly-once record of ``run``'s delivery (see ``handlers.replies``)."""
    shared = services.current()
    return ReplyMarker(shared.redis, run.job_id, ttl=shared.settings.dedupe_ttl)


async def _run_agent(hooks: PlatformHooks, context: RunContext, event: Event) -> Reply:
    run = context.run
    relay = ProgressRelay(
        lambda text: hooks.on_progress(event, text, run), interval=hooks.progress_interval, log=run.log
    )
    context.forward_progress = relay.push
    try:
        return await execute_agent(context, event)
    except RunTimedOut as exc:
        await relay.close()
        await hooks.on_timeout(event, exc.partial, run)
        raise
    finally:
        await relay.close()


async def _notify_failure(hooks: PlatformHooks, event: Event, run: Run) -> None:
    """Tell the platform the run failed for good; a failure to tell never hides the run's own."""
    try:
        await hooks.on_failure(event, run)
    except Exception as exc:  # noqa: BLE001 - the run's error is what gets recorded and raised
        run.log.warning("could not report the failure", extra={"fields": {"error": describe(exc)}})


def _commit(context: RunContext, event: Event, reply: Reply) -> None:
    context.commit(reply, _turns(event, reply))
    if context.standalone is not None:
        _save_standalone(context.standalone, context)


async def log_delivery(event: Event, reply: Reply, run: Run) -> None:
    """Log the reply instead of posting it (the platform's credentials are not set); the run
    record keeps the text."""
    run.log.info(
        "reply ready (not posted: the platform's API credentials are not set)",
        extra={"fields": {"reply_chars": len(reply.text), "subject": event.subject}},
    )


async def log_progress(event: Event, text: str, run: Run) -> None:
    """Log progress instead of forwarding it (the run record keeps the text)."""
    run.log.debug("progress", extra={"fields": {"chars": len(text)}})


async def log_timeout(event: Event, partial: tuple[str, ...], run: Run) -> None:
    """Log that the run timed out instead of telling the platform."""
    run.log.warning("run timed out", extra={"fields": {"partial_messages": len(partial)}})


def _turns(event: Event, reply: Reply) -> list[Turn]:
    asked = event.text or event.title or f"{event.name} {event.action or ''}".strip()
    at = runs.utcnow()
    return [Turn("user", asked, at, event.delivery_id), Turn("assistant", reply.text, at, event.delivery_id)]


def _standalone(envelope: Envelope) -> RunContext:
    """A context for a job run by a stock RQ worker: settings-driven, no cancellation."""
    settings = Settings.from_environ()
    loop = asyncio.get_running_loop()
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
        on_progress=lambda text: _standalone_progress(context, connection, loop, text),
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


def _standalone_progress(
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
