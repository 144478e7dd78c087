"""Reading Slack's three body shapes (events, slash commands, interactivity), each field in one place.

Every caller (the session key, the event the agent sees, where the answer goes, the thread tool)
reads the thread, the channel and the actor through these functions, so they agree. Payloads
stay plain dicts; any field may be absent, null or of another type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.types import Envelope
from handlers.agent import Event
from handlers.payload import as_dict
from handlers.slack.format import escape
from handlers.state.sessions import build_key

__all__ = [
    "PLATFORM",
    "Target",
    "event_thread",
    "interaction_thread",
    "is_ignored",
    "session_key",
    "target_of",
    "team_of",
    "to_event",
]

PLATFORM = "slack"
_IGNORED_SUBTYPES = frozenset({"bot_message", "message_changed", "message_deleted", "channel_join"})
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


@dataclass(frozen=True)
class Target:
    """Where a delivery's answer goes: a channel (and thread), and/or a ``response_url``."""

    channel: str | None
    thread_ts: str | None
    response_url: str | None = None
    header: str = ""


def event_thread(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(channel, thread ts)`` of an Events API event: its thread, or the thread it starts."""
    inner = as_dict(payload.get("event"))
    return inner.get("channel"), inner.get("thread_ts") or inner.get("ts")


def interaction_thread(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(channel, thread ts)`` of an interaction on a message: the thread holding that message."""
    container, message = as_dict(payload.get("container")), as_dict(payload.get("message"))
    channel = container.get("channel_id") or as_dict(payload.get("channel")).get("id")
    thread = message.get("thread_ts") or container.get("thread_ts") or container.get("message_ts")
    return channel, thread or message.get("ts")


def team_of(payload: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The workspace (team id) a delivery came from, ``"-"`` when it names none."""
    team = meta.get("team_id") or payload.get("team_id") or as_dict(payload.get("team")).get("id")
    return str(team) if team else "-"


def session_key(envelope: Envelope) -> str:
    """``slack:<team>:<channel>:<thread ts>`` (commands: ``...:command:<trigger id>``)."""
    payload, meta = envelope["payload"], envelope["meta"]
    team = team_of(payload, meta)
    kind = meta.get("kind")
    if kind == "event":
        channel, thread = event_thread(payload)
        inner = as_dict(payload.get("event"))
        return build_key(
            PLATFORM, team, channel or "-", thread or inner.get("event_ts") or envelope["delivery_id"]
        )
    if kind == "interactive":
        channel, thread = interaction_thread(payload)
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
        actor, channel = as_dict(payload.get("user")).get("id"), interaction_thread(payload)[0]
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


def target_of(event: Event) -> Target | None:
    """The place to answer ``event``, or ``None`` when it gets no message.

    Mentions and direct messages are answered in their thread; block actions in the thread of
    the message holding the button; slash commands with a message in their channel (headed by
    who asked what), or through their ``response_url``. Shortcuts, modals and plain channel
    messages get no message.
    """
    payload, kind = event.payload, event.meta.get("kind")
    if kind == "event" and event.name in ("app_mention", "message.im"):
        return Target(*event_thread(payload))
    if kind == "command":
        return Target(payload.get("channel_id"), None, payload.get("response_url"), _command_header(payload))
    if kind == "interactive" and payload.get("type") == "block_actions":
        return Target(*interaction_thread(payload), payload.get("response_url"))
    return None


def _command_header(payload: Mapping[str, Any]) -> str:
    """``<@U1> `/triage why?``` and a newline: who asked what (mrkdwn; the words escaped)."""
    user = payload.get("user_id")
    asker = f"<@{user}> " if isinstance(user, str) and _USER_ID.fullmatch(user) else ""
    asked = escape(f"{payload.get('command', '')} {payload.get('text', '')}".strip())
    return f"{asker}`{asked}`\n"
