"""Reading GitHub's webhook payloads, each field in one place.

The session key, the event the agent sees, the facts, the reply and the tools all find the
repository, the issue or pull request number, the head commit and the actor through these
functions. Payloads stay plain dicts; any field may be absent, null or of another type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.types import Envelope
from handlers.agent import Event
from handlers.messages import FollowUp, Message
from handlers.payload import as_dict
from handlers.state.replies import is_ours
from handlers.state.sessions import build_key

__all__ = [
    "PLATFORM",
    "followup",
    "head_sha",
    "installation_id",
    "is_bot",
    "is_ignored",
    "is_pull",
    "is_review_comment",
    "number_of",
    "repository",
    "session_key",
    "to_event",
]

PLATFORM = "github"
_COMMENTS = frozenset(
    {
        ("issue_comment", "created"),
        ("pull_request_review_comment", "created"),
        ("pull_request_review", "submitted"),
    }
)


def repository(payload: Mapping[str, Any]) -> str | None:
    """``owner/name`` of the event's repository."""
    name = as_dict(payload.get("repository")).get("full_name")
    return name if isinstance(name, str) and name else None


def number_of(payload: Mapping[str, Any]) -> int | None:
    """The issue or pull request number the event is about (issues and pull requests share numbers)."""
    for holder in (payload.get("issue"), payload.get("pull_request")):
        if isinstance(holder, dict) and isinstance(holder.get("number"), int):
            return int(holder["number"])
    number = payload.get("number")
    return number if isinstance(number, int) else None


def head_sha(payload: Mapping[str, Any]) -> str | None:
    """The head commit of the event's pull request."""
    sha = as_dict(as_dict(payload.get("pull_request")).get("head")).get("sha")
    return sha if isinstance(sha, str) and sha else None


def installation_id(event: Event) -> int | None:
    """The GitHub App installation of the event (``None`` for repository webhooks)."""
    value = event.meta.get("installation_id", as_dict(event.payload.get("installation")).get("id"))
    return value if isinstance(value, int) else None


def is_pull(event: Event) -> bool:
    """True for pull request events and comments on a pull request's conversation."""
    issue = as_dict(event.payload.get("issue"))
    return "pull_request" in event.payload or bool(issue.get("pull_request"))


def is_review_comment(event: Event) -> bool:
    """True for a new comment in a pull request's review thread."""
    return event.name == "pull_request_review_comment" and event.action == "created"


def session_key(envelope: Envelope) -> str:
    """``github:<repository id>:<number>``, else ``github:<repository id>``."""
    payload = envelope["payload"]
    repo = as_dict(payload.get("repository"))
    repo_id = repo.get("id") or repo.get("full_name")
    number = number_of(payload)
    if repo_id is not None and number is not None:
        return build_key(PLATFORM, repo_id, number)
    if repo_id is not None:
        return build_key(PLATFORM, repo_id)
    installation = as_dict(payload.get("installation")).get("id") or envelope["delivery_id"]
    return build_key(PLATFORM, "installation", installation)


def to_event(envelope: Envelope) -> Event:
    """Who, on what (``org/repo#12``), the title and the most relevant text of the event."""
    payload = envelope["payload"]
    item = as_dict(payload.get("issue")) or as_dict(payload.get("pull_request"))
    full_name = repository(payload)
    number = number_of(payload)
    subject = f"{full_name}#{number}" if full_name and number is not None else full_name
    text = (
        as_dict(payload.get("comment")).get("body")
        or as_dict(payload.get("review")).get("body")
        or item.get("body")
        or as_dict(payload.get("head_commit")).get("message")
    )
    return Event.from_envelope(
        envelope,
        session_key=session_key(envelope),
        actor=as_dict(payload.get("sender")).get("login"),
        subject=subject,
        title=item.get("title"),
        text=text,
    )


def is_ignored(event: Event) -> bool:
    """Comments carrying our delivery marker (everything this gateway posts; with a personal
    token they come from a ``User``) never start a run nor count as follow-ups."""
    return is_ours(as_dict(event.payload.get("comment")).get("body"))


def is_bot(event: Event) -> bool:
    """Sent by a bot: a GitHub App (our own included) or a bot account."""
    sender = as_dict(event.payload.get("sender"))
    return sender.get("type") == "Bot" or str(sender.get("login", "")).endswith("[bot]")


def followup(envelope: Envelope, stop_word: str) -> FollowUp | None:
    """A new comment (or review) on the issue or pull request: its text, and a stop when it is
    just ``/<stop word>``; ``None`` for other events."""
    if (envelope["event"], envelope["action"]) not in _COMMENTS:
        return None
    payload = envelope["payload"]
    body = as_dict(payload.get("comment")).get("body") or as_dict(payload.get("review")).get("body")
    if not isinstance(body, str) or not body.strip():
        return None
    text = body.strip()
    login = as_dict(payload.get("sender")).get("login")
    message = Message(
        text=text,
        actor=str(login) if login else None,
        platform=PLATFORM,
        delivery_id=envelope["delivery_id"],
        received_at=envelope["received_at"],
    )
    return FollowUp(message, stop=text.casefold() == f"/{stop_word}")
