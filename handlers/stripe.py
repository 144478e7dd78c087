"""Stripe: snapshot and thin (v2) events, run through the agent.

Session: one customer of one account (``account`` is the Connect account, or ``platform``);
events without a customer use the object they are about.

Facts and results: ``handlers.stripe_reply`` (the object's current state before the run; the
summary written back as metadata, and announced in ``STRIPE_SLACK_CHANNEL``, after it).
"""

from __future__ import annotations

from typing import Any

from gateway.types import Envelope
from handlers import stripe_reply
from handlers.agent import Event
from handlers.platform import PlatformHooks, log_progress, log_timeout, run_event
from handlers.session import build_key

PLATFORM = "stripe"


def session_key(envelope: Envelope) -> str:
    """``stripe:<account>:customer:<id>``, else ``stripe:<account>:object:<id>``."""
    account = envelope["meta"].get("account") or "platform"
    customer = _customer(envelope["payload"])
    if customer:
        return build_key(PLATFORM, account, "customer", customer)
    return build_key(PLATFORM, account, "object", _object_id(envelope))


def to_event(envelope: Envelope) -> Event:
    """The event type, the customer or object it concerns, and a line on amount and status."""
    payload = envelope["payload"]
    obj = _object(payload)
    customer = _customer(payload)
    subject = (
        f"customer {customer}" if customer else f"{obj.get('object') or 'object'} {_object_id(envelope)}"
    )
    return Event.from_envelope(
        envelope,
        session_key=session_key(envelope),
        actor=envelope["meta"].get("account"),
        subject=subject,
        title=None,
        text=_details(obj),
    )


def is_ignored(event: Event) -> bool:
    """Updates that only changed our own metadata (``gateway_*``): answering them would loop."""
    if not event.name.endswith(".updated"):
        return False
    data = event.payload.get("data")
    previous = data.get("previous_attributes") if isinstance(data, dict) else None
    if not isinstance(previous, dict) or set(previous) != {"metadata"}:
        return False
    before = previous["metadata"] if isinstance(previous["metadata"], dict) else {}
    after = _object(dict(event.payload)).get("metadata") or {}
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return bool(changed) and all(key.startswith("gateway_") for key in changed)


def _object(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def _customer(payload: dict[str, Any]) -> str | None:
    obj = _object(payload)
    if obj.get("object") == "customer":
        return str(obj["id"]) if obj.get("id") else None
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def _object_id(envelope: Envelope) -> str:
    related = envelope["meta"].get("related_object")
    candidates = (
        _object(envelope["payload"]).get("id"),
        related.get("id") if isinstance(related, dict) else None,
    )
    return next((str(value) for value in candidates if value), envelope["delivery_id"])


def _details(obj: dict[str, Any]) -> str | None:
    amount = obj.get("amount_due", obj.get("amount"))
    parts = []
    if isinstance(amount, int) and isinstance(obj.get("currency"), str):
        parts.append(f"{amount / 100:.2f} {obj['currency'].upper()}")
    if obj.get("status"):
        parts.append(f"status {obj['status']}")
    error = obj.get("last_payment_error") or {}
    reason = obj.get("failure_message") or (error.get("message") if isinstance(error, dict) else None)
    if reason:
        parts.append(str(reason))
    return ", ".join(parts) or None


HOOKS = PlatformHooks(
    name=PLATFORM,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=stripe_reply.deliver,
    on_progress=log_progress,
    on_timeout=log_timeout,
    enrich=stripe_reply.enrich,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.stripe.handle``: run the agent on one Stripe delivery."""
    return await run_event(HOOKS, envelope)
