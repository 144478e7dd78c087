"""What the Slack agent may know before it runs: the queue's figures when the user asks for
``status``; in an assistant thread, the channel the user is looking at (``assistant_context``)."""

from __future__ import annotations

import asyncio
import dataclasses

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from handlers.agent import Event, Run
from handlers.slack.assistant import context_of
from handlers.slack.format import command_of

__all__ = ["enrich", "queue_status"]


async def enrich(event: Event, run: Run) -> Event:
    """Add ``facts["assistant_context"]`` to a direct message in an assistant thread (what the
    user is looking at: ``channel_id``, ``team_id``, ``enterprise_id``), and ``facts["status"]``
    (queue figures) when the user asks for ``status``."""
    shared = run.services
    facts = dict(event.facts)
    if event.meta.get("kind") == "event" and event.name == "message.im":
        context = await asyncio.to_thread(context_of, shared.redis, event.session_key)
        if context is not None:
            facts["assistant_context"] = context
    if command_of(event.text)[0] == "status":
        facts["status"] = await asyncio.to_thread(queue_status, shared.redis, shared.settings.queue_name)
    return dataclasses.replace(event, facts=facts) if facts != event.facts else event


def queue_status(connection: redis.Redis, name: str) -> dict[str, int]:
    """Jobs queued, running, waiting for a retry and failed, and the live workers (blocking)."""
    queue = Queue(name, connection=connection)
    return {
        "queued": queue.count,
        "running": StartedJobRegistry(name, connection=connection).count,
        "retrying": ScheduledJobRegistry(name, connection=connection).count,  # type: ignore[no-untyped-call]
        "failed": FailedJobRegistry(name, connection=connection).count,
        "workers": Worker.count(connection=connection, queue=queue),
    }
