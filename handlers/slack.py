"""Slack: Events API events, slash commands and interactivity, run through the agent.

Session: one Slack thread (team + channel + ``thread_ts``, or the message's own ``ts`` when it
starts a thread). A slash command starts its own conversation; an interaction (a button on a
message) belongs to that message's thread.

Delivery (``handlers.slack_reply``): a threaded answer that starts as a "working on it"
placeholder, shows throttled progress and is replaced by the answer, posted exactly once.
Enrichment: ``status`` asks for the queue's figures, read from Redis/RQ before the agent runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from gateway.types import Envelope
from handlers import services, slack_reply
from handlers.agent import Event, Run
from handlers.payload import as_dict
from handlers.platform import PlatformHooks, run_event
from handlers.session import build_key
from handlers.slack_format import command_of

PLATFORM = "slack"
_IGNORED_SUBTYPES = frozenset({"bot_message", "message_changed", "message_deleted", "channel_join"})


def session_key(envelope: Envelope) -> str:
    """``slack:<team>:<channel>:<thread ts>`` (commands: ``...:command:<trigger id>``)."""
    payload, meta = envelope["payload"], envelope["meta"]
    team = meta.get("team_id") or payload.get("team_id") or "-"
    kind = meta.get("kind")
    if kind == "event":
        event = as_dict(payload.get("event"))
        thread = event.get("thread_ts") or event.get("ts") or event.get("event_ts") or envelope["delivery_id"]
        return build_key(PLATFORM, team, event.get("channel") or "-", thread)
    if kind == "interactive":
        channel, thread = _interaction_thread(payload)
        if channel and thread:
            return build_key(PLATFORM, team, channel, thread)
        return build_key(PLATFORM, team, "interaction", envelope["delivery_id"])
    return build_key(PLATFORM, team, payload.get("channel_id") or "-", "command", envelope["delivery_id"])


def to_event(envelope: Envelope) -> Event:
    """The fields the agent uses, from any of Slack's three body shapes."""
    payload, kind = envelope["payload"], envelope["meta"].get("kind")
    if kind == "event":
        inner = as_dict(payload.get("event"))
        actor, text, channel = inner.get("user"), inner.get("text"), inner.get("channel")
    elif kind == "interactive":
        actor, channel = as_dict(payload.get("user")).get("id"), _interaction_thread(payload)[0]
        actions = payload.get("actions") or [{}]
        text = as_dict(actions[0]).get("value") if isinstance(actions, list) else None
    else:
        actor, text, channel = payload.get("user_id"), payload.get("text"), payload.get("channel_id")
    return Event.from_envelope(
        envelope,
        session_key=session_key(envelope),
        actor=f"<@{actor}>" if actor else None,
        subject=f"channel {channel}" if channel else None,
        title=envelope["action"] if kind == "command" else None,
        text=text,
    )


def is_ignored(event: Event) -> bool:
    """Bot messages (including our own), edits and deletions never start a run."""
    if event.meta.get("kind") != "event":
        return False
    inner = as_dict(event.payload.get("event"))
    if inner.get("bot_id") or inner.get("subtype") in _IGNORED_SUBTYPES:
        return True
    bots = {a.get("user_id") for a in event.payload.get("authorizations") or [] if as_dict(a).get("is_bot")}
    return inner.get("type") == "message" and inner.get("user") in bots


async def enrich(event: Event, run: Run) -> Event:
    """Add ``facts["status"]`` (queue figures) when the user asks for ``status``."""
    if command_of(event.text)[0] != "status":
        return event
    status = await asyncio.to_thread(queue_status)
    return dataclasses.replace(event, facts={**event.facts, "status": status})


def queue_status() -> dict[str, int]:
    """Jobs queued, running, waiting for a retry and failed, and the live workers (blocking)."""
    shared = services.current()
    connection, name = shared.redis, shared.settings.queue_name
    queue = Queue(name, connection=connection)
    return {
        "queued": queue.count,
        "running": StartedJobRegistry(name, connection=connection).count,
        "retrying": ScheduledJobRegistry(name, connection=connection).count,  # type: ignore[no-untyped-call]
        "failed": FailedJobRegistry(name, connection=connection).count,
        "workers": Worker.count(connection=connection, queue=queue),
    }


def _interaction_thread(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    container, message = as_dict(payload.get("container")), as_dict(payload.get("message"))
    channel = container.get("channel_id") or as_dict(payload.get("channel")).get("id")
    thread = message.get("thread_ts") or container.get("thread_ts") or container.get("message_ts")
    return channel, thread or message.get("ts")


HOOKS = PlatformHooks(
    name=PLATFORM,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=slack_reply.deliver,
    on_progress=slack_reply.on_progress,
    on_timeout=slack_reply.on_timeout,
    on_failure=slack_reply.on_failure,
    begin=slack_reply.begin,
    enrich=enrich,
    progress_interval=slack_reply.PROGRESS_INTERVAL,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.slack.handle``: run the agent on one Slack delivery."""
    return await run_event(HOOKS, envelope)
