"""Runs started through the runs API (``POST /api/runs``), not tied to a platform.

The ingress queues them like deliveries (platform ``api``, the ``Idempotency-Key`` or a random id
as the delivery id). Session: the ``session_id`` the caller gave, so a web front end's
conversation keeps its history. The answer goes nowhere else: the caller reads it from the run's
event stream and its record. A request with the ``session_id`` of a run still working is a
follow-up to it (its ``message`` event shows in that run's stream); ``stop`` alone stops it.

``handle`` is the job function the API names (``handlers.api.handle``).
"""

from __future__ import annotations

from typing import Any

from gateway.types import Envelope
from handlers.agent import Event, Reply, Run
from handlers.messages import FollowUp, Message
from handlers.pipeline import WorkerPlatform, run_event
from handlers.services import Services
from handlers.state.sessions import build_key

__all__ = ["PLATFORM", "delivered", "deliver", "followup", "handle", "session_key", "to_event"]


def session_key(envelope: Envelope) -> str:
    """``api:<session id>``."""
    return build_key("api", envelope["payload"].get("session_id") or envelope["delivery_id"])


def to_event(envelope: Envelope) -> Event:
    """The caller's text, in its session."""
    return Event.from_envelope(
        envelope, session_key=session_key(envelope), text=envelope["payload"].get("text")
    )


def followup(envelope: Envelope, stop_word: str) -> FollowUp | None:
    """Every API request continues its session; ``stop`` alone stops the session's run."""
    text = str(envelope["payload"].get("text") or "").strip()
    message = Message(
        text=text,
        actor=None,
        platform="api",
        delivery_id=envelope["delivery_id"],
        received_at=envelope["received_at"],
    )
    return FollowUp(message, stop=text.casefold() == stop_word)


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Nothing to post: the reply is in the run's record and its ``reply`` event."""


def delivered(services: Services) -> bool:
    """An API run's answer always reaches where it goes (the record and the event stream)."""
    return True


PLATFORM = WorkerPlatform(
    name="api",
    session_key=session_key,
    to_event=to_event,
    is_ignored=lambda event: False,
    deliver=deliver,
    is_configured=delivered,
    followup=followup,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.api.handle``: run the agent on one API request."""
    return await run_event(PLATFORM, envelope)
