"""Slack's agent container: the assistant threads people open from Slack's top bar.

- ``assistant_thread_started`` (someone opened a new thread): the suggested prompts
  (``SLACK_SUGGESTED_PROMPTS``, ``assistant.threads.setSuggestedPrompts``) and a title
  (``assistant.threads.setTitle``) are set; no agent runs (the job ends ``ignored``, with a note
  of what was done);
- ``assistant_thread_started`` and ``assistant_thread_context_changed``: the thread's context (the
  channel the user is looking at) is kept in Redis (``keys.slack_assistant``) as long as the
  thread's history, the newest event winning, so the agent sees it on the messages of that thread
  as ``Event.facts["assistant_context"]`` (``facts.enrich``).

The messages people write in the thread are ``message.im`` events, answered like any other
direct message. Slack refuses the two methods for an app without the agent feature
(``not_agent_app``) or without ``assistant:write`` (``missing_scope``): that is logged with what
to change, and the job ends; it is not retried, since another attempt cannot fix it.
Docs: https://docs.slack.dev/ai/developing-ai-apps
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import redis
from rq.utils import as_text

from gateway.platforms.slack.prompts import LIST_TITLE
from gateway.types import Envelope
from handlers.errors import PermanentError
from handlers.services import Services
from handlers.slack import client
from handlers.slack.payload import ASSISTANT_EVENTS, AssistantThread, assistant_thread, team_of
from handlers.state import keys, sessions

__all__ = ["EVENTS", "TITLE", "context_of", "handle", "is_assistant", "remember"]

logger = logging.getLogger("handlers.slack")

EVENTS = ASSISTANT_EVENTS
TITLE = "New chat"
"""The title a new assistant thread gets (Slack lists the app's threads by title)."""
_HINTS = {
    "not_agent_app": "turn on Agents & AI Apps in the app's settings (gateway manifest slack has it)",
    "missing_scope": "add the assistant:write scope and reinstall the app (gateway manifest slack has it)",
}


def is_assistant(envelope: Envelope) -> bool:
    """True for the agent container's events: they set up a thread, they run no agent."""
    return envelope["event"] in EVENTS


async def handle(services: Services, envelope: Envelope, *, session: str, deadline: float) -> dict[str, Any]:
    """Keep the thread's context; on a new thread, set its prompts and title. The job's result."""
    thread = assistant_thread(envelope)
    if thread is None:
        logger.warning("assistant event names no thread", extra={"fields": {"event": envelope["event"]}})
        return {"status": "ignored", "note": "the assistant event names no thread"}
    kept = await asyncio.to_thread(remember, services.redis, session, thread)
    notes = [f"context kept: {thread.context or 'none'}" if kept else "context not kept: a newer one is"]
    if envelope["event"] == "assistant_thread_started":
        notes += await _welcome(services, envelope, thread, deadline)
    return {"status": "ignored", "note": "; ".join(notes)}


def remember(connection: redis.Redis, session: str, thread: AssistantThread) -> bool:
    """Store ``thread``'s context for ``session`` unless a newer event's is stored (blocking);
    False when it was older. Deliveries may arrive out of order, so ``event_ts`` decides."""
    key = keys.slack_assistant(sessions.session_id(session))
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                stored = pipe.hget(key, "event_ts")
                if stored is not None and _ts(as_text(stored)) > _ts(thread.event_ts):
                    pipe.unwatch()
                    return False
                pipe.multi()
                fields = {"context": json.dumps(thread.context), "event_ts": thread.event_ts}
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                pipe.expire(key, sessions.retention())
                pipe.execute()
                return True
            except redis.WatchError:
                continue


def context_of(connection: redis.Redis, session: str) -> dict[str, str] | None:
    """The stored context of the assistant thread ``session`` (blocking), its time to live renewed;
    ``None`` when the session is no assistant thread (or its context has expired)."""
    key = keys.slack_assistant(sessions.session_id(session))
    with connection.pipeline() as pipe:
        pipe.hget(key, "context")
        pipe.expire(key, sessions.retention())
        raw, _ = pipe.execute()
    if raw is None:
        return None
    try:
        context = json.loads(as_text(raw))
    except ValueError:
        return None
    return {str(k): str(v) for k, v in context.items()} if isinstance(context, dict) else None


async def _welcome(
    services: Services, envelope: Envelope, thread: AssistantThread, deadline: float
) -> list[str]:
    if not client.is_configured(services):
        return ["prompts and title not set: no bot token for this workspace"]
    team = team_of(envelope["payload"], envelope["meta"])
    prompts = services.settings.slack.suggested_prompts
    notes = []
    if prompts:
        notes.append(
            await _set(
                services,
                team,
                "assistant.threads.setSuggestedPrompts",
                deadline,
                channel_id=thread.channel,
                thread_ts=thread.thread_ts,
                title=LIST_TITLE,
                prompts=[prompt.to_slack() for prompt in prompts],
            )
        )
    notes.append(
        await _set(
            services,
            team,
            "assistant.threads.setTitle",
            deadline,
            channel_id=thread.channel,
            thread_ts=thread.thread_ts,
            title=TITLE,
        )
    )
    return notes


async def _set(services: Services, team: str, method: str, deadline: float, **args: Any) -> str:
    """Call ``method``; a refusal is logged and noted (transient errors go up: the job retries)."""
    web = client.web_client(services)
    function = getattr(web, method.replace(".", "_"))
    try:
        await client.call(
            function, deadline=deadline, pacer=client.budget_for(services).pacer(team, method), **args
        )
    except PermanentError as exc:
        code = str(exc).rsplit(": ", 1)[-1]
        hint = _HINTS.get(code, "see Slack's error for the method")
        logger.warning(
            f"Slack refused {method}: {hint}",
            extra={"fields": {"method": method, "error": code, "team": team}},
        )
        return f"{method} refused: {code}"
    return f"{method}: ok"


def _ts(value: str) -> Decimal:
    """A Slack timestamp (``1795345400.000200``) as an exact number; 0 when it is not one."""
    try:
        return Decimal(value)
    except InvalidOperation:
        return Decimal(0)
