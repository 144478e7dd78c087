"""Reading Stripe's events (snapshot and thin), each field in one place.

The session key, the event the agent sees, the facts, the reply, the tools and the triage alert
all find the event's object, its customer and its id through these functions. Payloads stay
plain dicts; any field may be absent, null or of another type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.types import Envelope
from handlers.agent import Event
from handlers.payload import as_dict
from handlers.state.sessions import build_key

__all__ = [
    "PLATFORM",
    "customer_of",
    "event_object",
    "is_ignored",
    "object_id",
    "session_key",
    "subscription_of",
    "to_event",
]

PLATFORM = "stripe"


def event_object(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot event's object (``data.object``); empty for thin events."""
    return as_dict(as_dict(payload.get("data")).get("object"))


def customer_of(obj: Mapping[str, Any]) -> str | None:
    """The customer id an object belongs to (a customer is its own), expanded or not."""
    if obj.get("object") == "customer":
        return str(obj["id"]) if obj.get("id") else None
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def subscription_of(obj: Mapping[str, Any]) -> str | None:
    """The subscription an object is (or belongs to): an invoice's is under
    ``parent.subscription_details`` since 2025-03-31.basil; webhook endpoints on older versions
    still send the top-level ``subscription``, which is read too."""
    if obj.get("object") == "subscription":
        return str(obj["id"]) if obj.get("id") else None
    details = as_dict(as_dict(obj.get("parent")).get("subscription_details"))
    found = details.get("subscription") or obj.get("subscription")
    if isinstance(found, dict):
        found = found.get("id")
    return found if isinstance(found, str) and found else None


def object_id(envelope: Envelope) -> str:
    """The id of the object the event is about (a thin event's ``related_object``), else the event's."""
    related = envelope["meta"].get("related_object")
    candidates = (event_object(envelope["payload"]).get("id"), as_dict(related).get("id"))
    return next((str(value) for value in candidates if value), envelope["delivery_id"])


def session_key(envelope: Envelope) -> str:
    """``stripe:<account>:customer:<id>``, else ``stripe:<account>:object:<id>``."""
    account = envelope["meta"].get("account") or "platform"
    customer = customer_of(event_object(envelope["payload"]))
    if customer:
        return build_key(PLATFORM, account, "customer", customer)
    return build_key(PLATFORM, account, "object", object_id(envelope))


def to_event(envelope: Envelope) -> Event:
    """The event type, the customer or object it concerns, and a line on amount and status."""
    obj = event_object(envelope["payload"])
    customer = customer_of(obj)
    subject = f"customer {customer}" if customer else f"{obj.get('object') or 'object'} {object_id(envelope)}"
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
    previous = as_dict(event.payload.get("data")).get("previous_attributes")
    if not isinstance(previous, dict) or set(previous) != {"metadata"}:
        return False
    before = as_dict(previous["metadata"])
    after = event_object(event.payload).get("metadata") or {}
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return bool(changed) and all(key.startswith("gateway_") for key in changed)


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
