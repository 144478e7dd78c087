"""What the ``llm`` agent may read in Stripe: the event's customer, their recent charges and invoices,
and their subscription.

Every tool reads only the customer the event is about (on the event's connected account, if any).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers.agent import Event
from handlers.llm.prompts import capped_json
from handlers.services import Services
from handlers.stripe.client import account_options, call, is_configured, stripe_client
from handlers.stripe.payload import customer_of, event_object, subscription_of
from handlers.tools import Arguments, Tool, ToolError, cap, integer_argument, schema, to_json

__all__ = ["PROMPT", "build", "notes"]

PROMPT = (
    "For Stripe you explain payment events to the support and finance team: why a payment failed, "
    "what a dispute means, what to do and by when. Look up the customer, their recent charges, "
    "invoices and subscription with the tools. Amounts are in the currency's smallest unit "
    "(cents). Answer in plain text with short bullets."
)
"""What the ``llm`` agent's system prompt says about Stripe."""

_CUSTOMER = ("id", "name", "email", "created", "currency", "balance", "delinquent", "description")
_CHARGE = (
    "id",
    "amount",
    "amount_refunded",
    "currency",
    "status",
    "paid",
    "refunded",
    "disputed",
    "failure_code",
    "failure_message",
    "outcome",
    "payment_intent",
    "created",
    "description",
)
_INVOICE = (
    "id",
    "number",
    "status",
    "amount_due",
    "amount_paid",
    "amount_remaining",
    "currency",
    "attempt_count",
    "next_payment_attempt",
    "due_date",
    "billing_reason",
    "created",
)
_SUBSCRIPTION = (
    "id",
    "status",
    "created",
    "cancel_at_period_end",
    "canceled_at",
    "cancellation_details",
    "latest_invoice",
    "collection_method",
)
_LIMIT = {"limit": {"type": "integer", "description": "how many, newest first (at most 20)"}}


class _Scope:
    """The event's customer and account, and a Stripe client to read them with."""

    def __init__(self, event: Event, services: Services) -> None:
        obj = event_object(event.payload)
        self.customer = customer_of(obj)
        self.subscription = subscription_of(obj)
        self.options = account_options(event)
        self.services = services

    async def read(self, fetch: Callable[[Any, dict[str, Any]], Any], deadline: float) -> Any:
        client = stripe_client(self.services)
        return await call(fetch, client.v1, dict(self.options), deadline=deadline)


def notes(event: Event) -> list[str]:
    """The snapshot's object, quoted (capped) in the ``llm`` agent's first message."""
    obj = event_object(event.payload)
    return ["Event object (JSON): " + capped_json(obj)] if obj else []


def build(event: Event, services: Services) -> list[Tool]:
    """The Stripe tools for ``event``'s customer (none when the event names no customer)."""
    scope = _Scope(event, services)
    if not scope.customer or not is_configured(services):
        return []
    customer_id = scope.customer

    async def customer(arguments: Arguments, deadline: float) -> str:
        found = await scope.read(lambda v1, o: v1.customers.retrieve(customer_id, options=o), deadline)
        return cap(to_json(_pick(found, _CUSTOMER)))

    async def charges(arguments: Arguments, deadline: float) -> str:
        limit = integer_argument(arguments, "limit", 10, low=1, high=20)
        params = {"customer": customer_id, "limit": limit}
        found = await scope.read(lambda v1, o: v1.charges.list(params=params, options=o), deadline)
        return cap(to_json([_pick(item, _CHARGE) for item in found.data]))

    async def invoices(arguments: Arguments, deadline: float) -> str:
        limit = integer_argument(arguments, "limit", 10, low=1, high=20)
        params = {"customer": customer_id, "limit": limit}
        found = await scope.read(lambda v1, o: v1.invoices.list(params=params, options=o), deadline)
        return cap(to_json([_invoice(item) for item in found.data]))

    async def subscription(arguments: Arguments, deadline: float) -> str:
        return cap(to_json(await _subscriptions(scope, customer_id, deadline)))

    label = f"customer {customer_id}"
    return [
        Tool(
            "stripe_customer",
            f"The {label}: name, email, balance, delinquency.",
            schema(),
            customer,
            lambda a: f"Looking up {label}",
        ),
        Tool(
            "stripe_charges",
            f"Recent charges of the {label}, with failure reasons and outcomes.",
            schema(_LIMIT),
            charges,
            lambda a: f"Reading the charges of {label}",
        ),
        Tool(
            "stripe_invoices",
            f"Recent invoices of the {label}: status, amounts, payment attempts.",
            schema(_LIMIT),
            invoices,
            lambda a: f"Reading the invoices of {label}",
        ),
        Tool(
            "stripe_subscription",
            f"The subscription(s) of the {label}: status, period, cancellation.",
            schema(),
            subscription,
            lambda a: f"Reading the subscription of {label}",
        ),
    ]


async def _subscriptions(scope: _Scope, customer_id: str, deadline: float) -> list[dict[str, Any]]:
    # The event's own subscription when it names one (invoice events do); else the customer's.
    sub_id = scope.subscription if isinstance(scope.subscription, str) else None
    if sub_id:
        found = await scope.read(lambda v1, o: v1.subscriptions.retrieve(sub_id, options=o), deadline)
        return [_subscription(found)]
    params = {"customer": customer_id, "limit": 3, "status": "all"}
    listed = await scope.read(lambda v1, o: v1.subscriptions.list(params=params, options=o), deadline)
    if not listed.data:
        raise ToolError(f"the customer {customer_id} has no subscription")
    return [_subscription(item) for item in listed.data]


def _invoice(obj: Any) -> dict[str, Any]:
    """An invoice's fields, with its subscription from ``parent.subscription_details``."""
    picked = _pick(obj, _INVOICE)
    subscription = subscription_of(_data(obj))
    return {**picked, "subscription": subscription} if subscription else picked


def _subscription(obj: Any) -> dict[str, Any]:
    """A subscription's fields, with the current period over its items (each item has its own)."""
    data, picked = _data(obj), _pick(obj, _SUBSCRIPTION)
    items = [item for item in (data.get("items") or {}).get("data") or [] if isinstance(item, dict)]
    starts = [
        item["current_period_start"] for item in items if isinstance(item.get("current_period_start"), int)
    ]
    ends = [item["current_period_end"] for item in items if isinstance(item.get("current_period_end"), int)]
    if starts and ends:
        picked.update(current_period_start=min(starts), current_period_end=max(ends))
    return picked


def _pick(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    data = _data(obj)
    return {name: data[name] for name in fields if data.get(name) is not None}


def _data(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
