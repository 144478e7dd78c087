"""Stripe on the worker side: snapshot and thin (v2) events, run through the agent.

Session: one customer of one account (``account`` is the Connect account, or ``platform``);
events without a customer use the object they are about.

- ``payload``: the one reading of Stripe's events (the object, its customer, its id);
- ``facts``: the object's current state before the run (events arrive out of order);
- ``reply``: the summary written back as metadata, and announced in ``STRIPE_SLACK_CHANNEL``;
- ``client``: the ``StripeClient`` and stripe-python's errors as ours;
- ``tools``: what the ``llm`` agent may read (the customer, charges, invoices, subscription);
- ``recover``: undelivered events found through the Events API and queued (``gateway recover stripe``).

``handle`` is the job function the ingress names (``handlers.stripe.handle``).
"""

from __future__ import annotations

from typing import Any

from gateway.types import Envelope
from handlers.pipeline import WorkerPlatform, run_event
from handlers.services import Services
from handlers.stripe import client, facts, recover, reply, tools
from handlers.stripe.payload import is_ignored, session_key, to_event

__all__ = ["PLATFORM", "handle", "session_key"]


def _missing_credentials(services: Services) -> str | None:
    return None if client.is_configured(services) else "STRIPE_API_KEY is not set"


PLATFORM = WorkerPlatform(
    name="stripe",
    session_key=session_key,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=reply.deliver,
    is_configured=client.is_configured,
    enrich=facts.enrich,
    tools=tools.build,
    prompt=tools.PROMPT,
    missing_credentials=_missing_credentials,
    notes=tools.notes,
    recover=recover.SWEEP,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.stripe.handle``: run the agent on one Stripe delivery."""
    return await run_event(PLATFORM, envelope)
