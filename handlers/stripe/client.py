"""Stripe's client for the worker (``StripeClient``), and how stripe-python's errors become ours.

Built once per worker at the configured API base, with an explicit timeout and its network
retries set to none: writes carry our own idempotency keys, so ``call`` retries them safely
under the one policy.

The API version is pinned here, ``API_VERSION``, and nowhere else: every request says it in
``Stripe-Version``, so what the code reads does not change with the installed SDK or the
account's default (https://docs.stripe.com/api-versions). The code reads that version's fields:
a subscription's periods on its items, an invoice's subscription under
``parent.subscription_details`` (both moved in 2025-03-31.basil).

Whose objects a request reads: a snapshot event of a connected account names it in ``account``,
sent as ``Stripe-Account``; a thin event names its ``context`` (an account, or a ``/``-separated
path through an organization), sent as ``Stripe-Context`` (https://docs.stripe.com/context).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stripe

from handlers import clients
from handlers.agent import Event
from handlers.config import StripeSettings
from handlers.errors import HandlerError, PermanentError, TransientError
from handlers.retry import retry_after_header
from handlers.services import Services

__all__ = [
    "API_VERSION",
    "COLLECTIONS",
    "ERRORS",
    "account_options",
    "build_client",
    "call",
    "is_configured",
    "object_path",
    "request_options",
    "stripe_client",
]

T = TypeVar("T")

API_VERSION = "2026-10-28.endive"
"""The Stripe API version every request is made in (stripe-python 16.1's own)."""

# v1 collection of each object type we read and annotate (all of them accept metadata).
COLLECTIONS = {
    "charge": "charges",
    "customer": "customers",
    "dispute": "disputes",
    "invoice": "invoices",
    "payment_intent": "payment_intents",
    "setup_intent": "setup_intents",
    "subscription": "subscriptions",
    "refund": "refunds",
    "payout": "payouts",
    "product": "products",
    "price": "prices",
    "checkout.session": "checkout/sessions",
}


class _StripeErrors:
    """stripe-python's exceptions as ours (``clients.ErrorTranslation``)."""

    def translate(self, exc: BaseException) -> HandlerError | None:
        if not isinstance(exc, stripe.StripeError):
            return None
        status = exc.http_status or 0
        if (
            isinstance(exc, (stripe.RateLimitError, stripe.APIConnectionError))
            or status == 429
            or status >= 500
        ):
            return TransientError(
                f"Stripe {type(exc).__name__} ({status or 'no answer'})",
                retry_after=retry_after_header(exc.headers),
            )
        return PermanentError(
            f"Stripe {type(exc).__name__} ({status}): {exc.user_message or exc.code or ''}".rstrip(": ")
        )

    def is_unapplied(self, exc: BaseException) -> bool:
        return isinstance(exc, stripe.RateLimitError)


ERRORS = _StripeErrors()


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``clients.call`` with stripe-python's errors translated (options: policy, deadline, idempotent)."""
    return await clients.call(function, *args, translation=ERRORS, **kwargs)


def is_configured(services: Services) -> bool:
    """True when ``STRIPE_API_KEY`` is set: otherwise results are only logged."""
    return bool(services.settings.stripe.api_key)


def stripe_client(services: Services) -> stripe.StripeClient:
    """The worker's Stripe client (``PermanentError`` without ``STRIPE_API_KEY``)."""
    return services.shared("stripe.client", lambda: build_client(services.settings.stripe))


def build_client(settings: StripeSettings) -> stripe.StripeClient:
    """A ``StripeClient`` at the configured API base, with its network retries set to none."""
    if not settings.api_key:
        raise PermanentError("STRIPE_API_KEY is not set: the worker cannot read or annotate Stripe objects")
    return stripe.StripeClient(
        settings.api_key,
        base_addresses={"api": settings.api_base},
        stripe_version=API_VERSION,
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=clients.SDK_TIMEOUT_SECONDS),
    )


def object_path(obj: Mapping[str, Any]) -> str | None:
    """``/v1/charges/ch_1`` for a charge, ``None`` for types we do not annotate."""
    collection = COLLECTIONS.get(str(obj.get("object")))
    return f"/v1/{collection}/{obj['id']}" if collection and obj.get("id") else None


def request_options(event: Event) -> dict[str, Any]:
    """Options of every request made for ``event``: no SDK retries, and whose objects they are."""
    return {"max_network_retries": 0, **account_options(event)}


def account_options(event: Event) -> dict[str, str]:
    """``stripe_context`` for a thin event's ``context``, ``stripe_account`` for a snapshot event of
    a connected account, nothing for the platform's own events."""
    account = event.meta.get("account")
    if not isinstance(account, str) or not account:
        return {}
    return {"stripe_context": account} if event.meta.get("kind") == "thin" else {"stripe_account": account}
