"""Reading Slack's three body shapes (events, slash commands, interactivity), each field in one place.

Every caller (the session key, the event the agent sees, where the answer goes, the thread tool)
reads the thread, the channel and the actor through these functions, so they agree. Payloads
stay plain dicts; any field may be absent, null or of another type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.types import Envelope
from handlers.agent import Event
from handlers.messages import FollowUp, Message
from handlers.payload import as_dict
from handlers.slack import feedback
from handlers.slack.format import escape
from handlers.state.sessions import build_key

__all__ = [
    "ASSISTANT_EVENTS",
    "PLATFORM",
    "AssistantThread",
    "FeedbackClick",
    "Target",
    "STOP_ACTION",
    "assistant_thread",
    "event_thread",
    "feedback_click",
    "followup",
    "interaction_thread",
    "is_feedback",
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
ASSISTANT_EVENTS = frozenset({"assistant_thread_started", "assistant_thread_context_changed"})
"""The agent container's events: a user opened an assistant thread, or looked at another channel."""
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


@dataclass(frozen=True)
class AssistantThread:
    """An ``assistant_thread_*`` event: the thread (a DM ``channel`` and ``thread_ts``), who opened
    it, and ``context``: what the user is looking at (``channel_id``, ``team_id``,
    ``enterprise_id``, those Slack sent), as of ``event_ts``."""

    channel: str
    thread_ts: str
    user: str | None
    context: dict[str, str]
    event_ts: str


@dataclass(frozen=True)
class FeedbackClick:
    """A press of a feedback button under an answer: which run, which way, who, when (ISO-8601)."""

    job_id: str
    rating: feedback.Rating
    user: str
    at: str


def event_thread(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(channel, thread ts)`` of an Events API event: its thread, or the thread it starts; for
    the agent container's events, the assistant thread they are about."""
    inner = as_dict(payload.get("event"))
    assistant = as_dict(inner.get("assistant_thread"))
    if assistant:
        return assistant.get("channel_id"), assistant.get("thread_ts")
    return inner.get("channel"), inner.get("thread_ts") or inner.get("ts")


def assistant_thread(envelope: Envelope) -> AssistantThread | None:
    """The thread an ``assistant_thread_started`` / ``_context_changed`` event is about; ``None``
    for other deliveries and for one that names no thread."""
    if envelope["meta"].get("kind") != "event" or envelope["event"] not in ASSISTANT_EVENTS:
        return None
    inner = as_dict(envelope["payload"].get("event"))
    thread = as_dict(inner.get("assistant_thread"))
    channel, ts = thread.get("channel_id"), thread.get("thread_ts")
    if not (isinstance(channel, str) and channel and isinstance(ts, str) and ts):
        return None
    context = as_dict(thread.get("context"))
    user = thread.get("user_id")
    return AssistantThread(
        channel=channel,
        thread_ts=ts,
        user=user if isinstance(user, str) else None,
        context={
            name: value
            for name in ("channel_id", "team_id", "enterprise_id")
            if isinstance(value := context.get(name), str) and value
        },
        event_ts=str(inner.get("event_ts") or ts),
    )


def is_feedback(envelope: Envelope) -> bool:
    """A ``block_actions`` click on our feedback buttons (never a follow-up, nor a Stop)."""
    return _first_action(envelope).get("action_id") == feedback.ACTION_ID


def feedback_click(envelope: Envelope) -> FeedbackClick | None:
    """The click ``is_feedback`` finds, or ``None`` when its value or user is not readable."""
    if not is_feedback(envelope):
        return None
    action = _first_action(envelope)
    read = feedback.read_value(action.get("value"))
    user = as_dict(envelope["payload"].get("user")).get("id")
    if read is None or not isinstance(user, str) or not user:
        return None
    rating, job_id = read
    return FeedbackClick(job_id=job_id, rating=rating, user=user, at=_when(action.get("action_ts"), envelope))


def _first_action(envelope: Envelope) -> dict[str, Any]:
    payload = envelope["payload"]
    if envelope["meta"].get("kind") != "interactive" or payload.get("type") != "block_actions":
        return {}
    actions = payload.get("actions")
    return as_dict(actions[0]) if isinstance(actions, list) and actions else {}


def _when(action_ts: object, envelope: Envelope) -> str:
    """Slack's ``action_ts`` (Unix seconds, as text) as ISO-8601 UTC; else when it was received."""
    try:
        return datetime.fromtimestamp(float(str(action_ts)), UTC).isoformat(timespec="microseconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return envelope["received_at"]


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
