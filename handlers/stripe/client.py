"""Stripe's client for the worker (``StripeClient``), and how stripe-python's errors become ours.

Built once per worker at the configured API base, with an explicit timeout and its network
retries set to none: writes carry our own idempotency keys, so ``call`` retries them safely
under the one policy.
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
    "COLLECTIONS",
    "ERRORS",
    "build_client",
    "call",
    "is_configured",
    "object_path",
    "request_options",
    "stripe_client",
]

T = TypeVar("T")

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
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=clients.SDK_TIMEOUT_SECONDS),
    )


def object_path(obj: Mapping[str, Any]) -> str | None:
    """``/v1/charges/ch_1`` for a charge, ``None`` for types we do not annotate."""
    collection = COLLECTIONS.get(str(obj.get("object")))
    return f"/v1/{collection}/{obj['id']}" if collection and obj.get("id") else None


def request_options(event: Event) -> dict[str, Any]:
    """Options of every request made for ``event``: no SDK retries; Connect: the event's account."""
    account = event.meta.get("account")
    return {"max_network_retries": 0, **({"stripe_account": account} if account else {})}
