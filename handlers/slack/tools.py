"""What the ``llm`` agent may read in Slack: the thread it was mentioned in (and only that thread)."""

from __future__ import annotations

from collections import deque
from typing import Any

from handlers.agent import Event
from handlers.services import Services
from handlers.slack.client import is_configured
from handlers.slack.payload import event_thread, team_of
from handlers.slack.thread import ThreadReader
from handlers.tools import Arguments, Tool, cap, integer_argument, schema

__all__ = ["BUDGET_PATIENCE", "MAX_MESSAGES", "PROMPT", "build"]

MAX_MESSAGES = 100
BUDGET_PATIENCE = 10.0  # seconds one page may wait for the workspace's conversations.replies budget
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
    team = team_of(event.payload, event.meta)

    async def thread_history(arguments: Arguments, deadline: float) -> str:
        limit = integer_argument(arguments, "limit", 50, low=1, high=MAX_MESSAGES)
        reader = ThreadReader(services, team=team, channel=channel, ts=thread)
        newest: deque[dict[str, Any]] = deque(maxlen=limit)
        read = 0
        async for message in reader.messages(deadline=deadline, patience=BUDGET_PATIENCE):
            newest.append(message)
            read += 1
        lines = [_line(message) for message in newest]
        return cap("\n".join([*lines, *_notes(reader, read, len(newest))]) or "(the thread is empty)")

    return [
        Tool(
            "slack_thread",
            "The newest messages of the Slack thread you were mentioned in, oldest first.",
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


def _notes(reader: ThreadReader, read: int, kept: int) -> list[str]:
    """What the model should know about what it was not shown."""
    notes = [f"({read - kept} older messages left out)"] if read > kept else []
    if not reader.complete:
        notes.append(f"(only the first {read} messages of the thread could be read; newer ones are missing)")
    return notes


def _line(message: dict[str, Any]) -> str:
    who = f"<@{message['user']}>" if message.get("user") else f"bot {message.get('bot_id') or '?'}"
    return f"[{message.get('ts', '')}] {who}: {message.get('text') or ''}"
