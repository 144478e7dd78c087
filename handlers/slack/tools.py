"""What the ``llm`` agent may read in Slack: the thread it was mentioned in (and only that thread)."""

from __future__ import annotations

from typing import Any

from handlers.agent import Event
from handlers.services import Services
from handlers.slack.client import call, is_configured, web_client
from handlers.slack.payload import event_thread
from handlers.tools import Arguments, Tool, cap, integer_argument, schema

__all__ = ["MAX_MESSAGES", "PROMPT", "build"]

MAX_MESSAGES = 100
PROMPT = (
    "You were mentioned in Slack. When the question refers to the conversation, read the thread "
    "with slack_thread first. Answer in a few short paragraphs or bullets using Slack mrkdwn."
)
"""What the ``llm`` agent's system prompt says about Slack."""


def build(event: Event, services: Services) -> list[Tool]:
    """``slack_thread`` for events inside a channel message (mentions, thread replies)."""
    channel, thread = event_thread(event.payload)
    if not (channel and thread and is_configured(services)):
        return []

    async def thread_history(arguments: Arguments, deadline: float) -> str:
        limit = integer_argument(arguments, "limit", 50, low=1, high=MAX_MESSAGES)
        response = await call(
            web_client(services).conversations_replies,
            channel=channel,
            ts=thread,
            limit=limit,
            deadline=deadline,
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
