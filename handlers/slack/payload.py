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
from handlers.messages import FollowUp, Message
from handlers.payload import as_dict
from handlers.slack.format import escape
from handlers.state.sessions import build_key

__all__ = [
    "PLATFORM",
    "Target",
    "STOP_ACTION",
    "event_thread",
    "followup",
    "interaction_thread",
    "is_bot",
    "is_ignored",
    "spoken_text",
    "session_key",
    "target_of",
    "team_of",
    "to_event",
]

PLATFORM = "slack"
STOP_ACTION = "gateway_stop"
"""``action_id`` of the Stop button on a run's placeholder; its ``value`` is the run's job id."""
_IGNORED_SUBTYPES = frozenset({"message_changed", "message_deleted", "channel_join"})
_CONVERSATION_EVENTS = frozenset({"app_mention", "message.im"})
_LEADING_MENTIONS = re.compile(r"^(?:\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")
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
    """Our own messages, edits, deletions and joins never start a run nor count as follow-ups."""
    if event.meta.get("kind") != "event":
        return False
    inner = as_dict(event.payload.get("event"))
    return inner.get("subtype") in _IGNORED_SUBTYPES or _is_own(event.payload, inner)


def is_bot(event: Event) -> bool:
    """A message a bot sent (an app, a legacy integration), ours or another's."""
    inner = as_dict(event.payload.get("event")) if event.meta.get("kind") == "event" else {}
    return bool(inner.get("bot_id")) or inner.get("subtype") == "bot_message"


def _is_own(payload: Mapping[str, Any], inner: Mapping[str, Any]) -> bool:
    """Sent by this app: its bot user (``authorizations``) or its app id."""
    bots = {a.get("user_id") for a in payload.get("authorizations") or [] if as_dict(a).get("is_bot")}
    app = payload.get("api_app_id")
    apps = {inner.get("app_id"), as_dict(inner.get("bot_profile")).get("app_id")}
    return inner.get("user") in bots or (app is not None and app in apps)


def spoken_text(text: str | None) -> str:
    """What a person said to the bot: ``text`` without the mentions it starts with."""
    return _LEADING_MENTIONS.sub("", text or "").strip()


def followup(envelope: Envelope, stop_word: str) -> FollowUp | None:
    """A mention or direct message in a thread (its words, without the leading mention), or
    the Stop button of a placeholder; ``None`` for anything else."""
    payload, kind = envelope["payload"], envelope["meta"].get("kind")
    if kind == "interactive":
        actions = payload.get("actions") if isinstance(payload.get("actions"), list) else []
        action = as_dict(actions[0]) if actions else {}
        if payload.get("type") != "block_actions" or action.get("action_id") != STOP_ACTION:
            return None
        who = as_dict(payload.get("user")).get("id")
        target = action.get("value")
        return FollowUp(_message(envelope, stop_word, who), stop=True, target=str(target) if target else None)
    if kind != "event" or envelope["event"] not in _CONVERSATION_EVENTS:
        return None
    inner = as_dict(payload.get("event"))
    text = spoken_text(inner.get("text"))
    return FollowUp(_message(envelope, text, inner.get("user")), stop=text.casefold() == stop_word)


def _message(envelope: Envelope, text: str, user: object) -> Message:
    return Message(
        text=text,
        actor=f"<@{user}>" if user else None,
        platform=PLATFORM,
        delivery_id=envelope["delivery_id"],
        received_at=envelope["received_at"],
    )


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
