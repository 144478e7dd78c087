"""The triage agent's Stripe alert: what happened to which object, for how much, and why.

Built from ``facts["object"]`` (the object's state fetched when the run started, since Stripe
events arrive out of order), falling back to the snapshot in the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from handlers.agent import Event
from handlers.stripe.payload import event_object

__all__ = ["DASHBOARD_PATHS", "dashboard_link", "format_amount", "stripe_alert"]

# https://docs.stripe.com/currencies#zero-decimal and the three-decimal ones
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹"}
# Dashboard path per object type; anything else links to the event itself.
DASHBOARD_PATHS = {
    "charge": "payments",
    "payment_intent": "payments",
    "invoice": "invoices",
    "customer": "customers",
    "subscription": "subscriptions",
    "dispute": "disputes",
    "refund": "refunds",
    "payout": "payouts",
    "checkout.session": "checkout/sessions",
}
_HEADLINES = {
    "failed": ":x:",
    "payment_failed": ":x:",
    "dispute": ":warning:",
    "deleted": ":wastebasket:",
    "succeeded": ":white_check_mark:",
    "paid": ":white_check_mark:",
}


def stripe_alert(event: Event) -> str | None:
    """The alert text, or ``None`` when the event concerns no object we know."""
    obj = _object(event)
    if not obj.get("id"):
        return None
    lines = [f"{_icon(event.name)} **Stripe {event.name}**: {obj.get('object', 'object')} `{obj['id']}`"]
    customer = _customer(obj)
    if customer:
        lines.append(f"Customer: {customer}")
    amount = obj.get("amount_due", obj.get("amount"))
    if isinstance(amount, int) and isinstance(obj.get("currency"), str):
        lines.append(f"Amount: {format_amount(amount, obj['currency'])}")
    if obj.get("status"):
        lines.append(f"Status: {obj['status']}")
    lines += _reasons(obj)
    lines.append(f"Dashboard: {dashboard_link(obj, event)}")
    return "\n".join(lines)


def format_amount(minor: int, currency: str) -> str:
    """``1234, "usd"`` → ``$12.34``; ``500, "jpy"`` → ``¥500``; ``1234, "chf"`` → ``12.34 CHF``."""
    code = currency.lower()
    digits = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    value = f"{minor / 10**digits:,.{digits}f}"
    symbol = SYMBOLS.get(code)
    return f"{symbol}{value}" if symbol else f"{value} {code.upper()}"


def dashboard_link(obj: Mapping[str, Any], event: Event) -> str:
    """``https://dashboard.stripe.com/[test/]<type path>/<id>``, else the event's page."""
    live = obj.get("livemode", event.meta.get("livemode"))
    prefix = "https://dashboard.stripe.com/" + ("" if live else "test/")
    path = DASHBOARD_PATHS.get(str(obj.get("object")))
    if path is None:
        return f"{prefix}events/{event.delivery_id}"
    return f"{prefix}{path}/{obj['id']}"


def _object(event: Event) -> Mapping[str, Any]:
    fetched = event.facts.get("object")
    if isinstance(fetched, Mapping) and fetched.get("id"):
        return fetched
    return event_object(event.payload)


def _customer(obj: Mapping[str, Any]) -> str | None:
    """Who the customer is, for people: their email or name beside the id."""
    if obj.get("object") == "customer":
        return str(obj.get("email") or obj.get("name") or obj["id"])
    name = obj.get("customer_email") or obj.get("customer_name") or obj.get("receipt_email")
    customer = obj.get("customer")
    customer_id = customer.get("id") if isinstance(customer, Mapping) else customer
    if name and customer_id:
        return f"{name} (`{customer_id}`)"
    return str(name or customer_id) if (name or customer_id) else None


def _reasons(obj: Mapping[str, Any]) -> list[str]:
    lines = []
    error = obj.get("last_payment_error")
    failure = obj.get("failure_message") or (error.get("message") if isinstance(error, Mapping) else None)
    code = obj.get("failure_code") or (error.get("decline_code") if isinstance(error, Mapping) else None)
    if failure:
        lines.append(f"Failure: {failure}" + (f" (`{code}`)" if code else ""))
    if obj.get("object") == "dispute":
        lines.append(f"Dispute reason: {obj.get('reason') or 'unknown'}")
        due = obj.get("evidence_details")
        due_by = due.get("due_by") if isinstance(due, Mapping) else None
        if isinstance(due_by, int):
            when = datetime.fromtimestamp(due_by, UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"Evidence due by: {when}")
    if obj.get("cancellation_details") and isinstance(obj["cancellation_details"], Mapping):
        reason = obj["cancellation_details"].get("reason")
        if reason:
            lines.append(f"Cancellation reason: {reason}")
    return lines


def _icon(name: str) -> str:
    for word, icon in _HEADLINES.items():
        if word in name:
            return icon
    return ":information_source:"
