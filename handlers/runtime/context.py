"""What a running job function sees: the ``RunContext`` of its claim, through a contextvar.

The worker sets ``CURRENT`` before awaiting ``handlers.<platform>.handle(envelope)``; the
platform code reads it with ``current()`` and calls ``execute_agent`` to run the agent under the
deadline and the cancellation signal. The pipeline sets ``forward_progress`` and
``forward_stream`` for the run's relays; the ``Run``'s callbacks reach them through the
context. Outside our worker (a stock ``rq worker``), ``current()`` is ``None`` and the platform
code builds a standalone context instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal

import redis

from handlers.agent import Agent, Event, Reply, Run, Turn, is_async_agent
from handlers.errors import PermanentError, RunCancelled, RunTimedOut

__all__ = ["AGENT_SETTLE", "CURRENT", "current", "execute_agent", "RunContext", "StopReason"]

logger = logging.getLogger("handlers.runtime")

StopReason = Literal["cancelled", "timed_out", "drain", "lease_lost"]
# How long an interrupted agent gets to unwind before the run ends without it.
AGENT_SETTLE = 2.0


@dataclass
class RunContext:
    """One run's runtime state: the agent, the ``Run`` it gets, and how the run may be stopped."""

    job_id: str
    session_key: str | None
    agent: Agent
    run: Run
    budget: float
    agent_executor: Executor | None = None
    stop_reason: StopReason | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    turns: list[Turn] = field(default_factory=list)
    reply: Reply | None = None
    forward_progress: Callable[[str], Awaitable[None]] | None = None
    forward_stream: Callable[[str], None] | None = None
    """Hands ``run.stream`` text to the platform's relay, from any thread (the pipeline sets it)."""
    standalone: redis.Redis | None = None
    """Set only when a stock ``rq worker`` runs the job: the run then saves its own results."""
    will_retry: Callable[[BaseException], bool] = lambda error: False  # noqa: E731 - a plain default
    """Whether the runtime will run the job again after it fails with ``error`` (the retry
    policy's decision). A stock ``rq worker`` retries nothing."""

    def stop(self, reason: StopReason) -> None:
        """Ask the run to stop (first reason wins); the agent sees ``run.cancelled`` at once."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.run.cancel()
        self.stopped.set()

    def stream(self, text: str) -> None:
        """Pass streamed text on to the relay the pipeline set, if any (the ``Run``'s ``on_stream``)."""
        forward = self.forward_stream
        if forward is not None:
            forward(text)

    def commit(self, reply: Reply, turns: list[Turn]) -> None:
        """Remember the reply and the turns to append to the session when the run succeeds."""
        self.reply = reply
        self.turns = turns


CURRENT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("gateway_run", default=None)


def current() -> RunContext | None:
    """The context of the run this code executes in, or ``None`` outside the gateway worker."""
    return CURRENT.get()


async def execute_agent(context: RunContext, event: Event) -> Reply:
    """Run the agent on ``event`` until it returns, the deadline passes or the run is stopped.

    Raises ``RunTimedOut`` (with the progress so far), ``RunCancelled``, or whatever the agent
    raised. A synchronous agent runs in ``context.agent_executor`` (a thread).
    """
    run = context.run
    agent_task = asyncio.ensure_future(_invoke(context, event))
    stop_task = asyncio.ensure_future(context.stopped.wait())
    try:
        done, _ = await asyncio.wait(
            {agent_task, stop_task}, timeout=run.remaining, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stop_task.cancel()
    if agent_task in done:
        return _as_reply(agent_task.result())
    context.stop("timed_out")
    await _settle(agent_task)
    if context.stop_reason == "timed_out":
        raise RunTimedOut(context.budget, run.messages)
    raise RunCancelled(context.job_id)


async def _invoke(context: RunContext, event: Event) -> object:
    agent, run = context.agent, context.run
    if is_async_agent(agent):
        return await agent(event, run)  # type: ignore[misc]
    loop = asyncio.get_running_loop()
    # In the run's context, as asyncio.to_thread would: the agent's own trace spans join the run's.
    within = contextvars.copy_context()
    result = await loop.run_in_executor(context.agent_executor, within.run, agent, event, run)
    if asyncio.iscoroutine(result):
        return await result
    return result


async def _settle(task: asyncio.Future[object]) -> None:
    """Cancel the agent and give it ``AGENT_SETTLE`` s to unwind; a thread cannot be interrupted."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=AGENT_SETTLE)
    if not done:
        logger.warning("agent did not stop after cancellation; leaving it behind")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    elif not task.cancelled() and task.exception() is not None:
        logger.info("agent raised while stopping", exc_info=task.exception())


def _as_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    raise PermanentError(f"agent returned {type(value).__name__}, not a Reply")
