"""GitHub: every webhook event, run through the agent.

Session: one issue or pull request (repository id + number; issues and pull requests share
numbers in a repository); events without one (push, check suites) use the repository.

Facts and replies: ``handlers.github_reply`` (pull request files and issue labels before the
run; a comment, a review-thread reply and a check run after it, each posted once).
"""

from __future__ import annotations

from typing import Any

from gateway.types import Envelope
from handlers import github_reply
from handlers.agent import Event
from handlers.payload import as_dict
from handlers.platform import PlatformHooks, log_progress, log_timeout, run_event
from handlers.replies import is_ours
from handlers.session import build_key

PLATFORM = "github"


def session_key(envelope: Envelope) -> str:
    """``github:<repository id>:<number>``, else ``github:<repository id>``."""
    payload = envelope["payload"]
    repo = as_dict(payload.get("repository"))
    repo_id = repo.get("id") or repo.get("full_name")
    number = _number(payload)
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
    full_name = as_dict(payload.get("repository")).get("full_name")
    number = _number(payload)
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
    """Events sent by bots (our own App's comments included) never start a run, nor do comments
    carrying our delivery marker (with a personal token our comments come from a ``User``)."""
    sender = as_dict(event.payload.get("sender"))
    if sender.get("type") == "Bot" or str(sender.get("login", "")).endswith("[bot]"):
        return True
    return is_ours(as_dict(event.payload.get("comment")).get("body"))


def _number(payload: dict[str, Any]) -> int | None:
    for holder in (payload.get("issue"), payload.get("pull_request")):
        if isinstance(holder, dict) and isinstance(holder.get("number"), int):
            return int(holder["number"])
    number = payload.get("number")
    return number if isinstance(number, int) else None


HOOKS = PlatformHooks(
    name=PLATFORM,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=github_reply.deliver,
    on_progress=log_progress,
    on_timeout=log_timeout,
    enrich=github_reply.enrich,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.github.handle``: run the agent on one GitHub delivery."""
    return await run_event(HOOKS, envelope)
