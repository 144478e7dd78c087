"""Slack tools: the history of the thread the bot was mentioned in (and only that thread)."""

from __future__ import annotations

from typing import Any

from gateway.config import Settings
from handlers import clients, services
from handlers.agent import Event
from handlers.llm.tools import Arguments, Tool, cap, integer_argument, schema

MAX_MESSAGES = 100


def build(event: Event, settings: Settings) -> list[Tool]:
    """``slack_thread`` for events inside a channel message (mentions, thread replies)."""
    inner = event.payload.get("event")
    inner = inner if isinstance(inner, dict) else {}
    channel, thread = inner.get("channel"), inner.get("thread_ts") or inner.get("ts")
    if not (channel and thread and settings.slack.bot_token):
        return []

    async def thread_history(arguments: Arguments, deadline: float) -> str:
        limit = integer_argument(arguments, "limit", 50, low=1, high=MAX_MESSAGES)
        client = services.of(settings).slack
        response = await clients.call(
            client.conversations_replies, channel=channel, ts=thread, limit=limit, deadline=deadline
        )
        messages = response.get("messages") or []
        return cap("\n".join(_line(message) for message in messages[-limit:]) or "(the thread is empty)")

    return [
        Tool(
            "slack_thread",
            "The messages of the Slack thread you were mentioned in, oldest first.",
            schema(
                {
                    "limit": {
                        "type": "integer",
                        "description": f"newest messages to read, at most {MAX_MESSAGES}",
                    }
                }
            ),
            thread_history,
            lambda arguments: "Reading the thread",
        )
    ]


def _line(message: dict[str, Any]) -> str:
    who = f"<@{message['user']}>" if message.get("user") else f"bot {message.get('bot_id') or '?'}"
    return f"[{message.get('ts', '')}] {who}: {message.get('text') or ''}"
