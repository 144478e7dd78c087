"""Stripe: snapshot events (``"object": "event"``) and thin event notifications (``"v2.core.event"``).

Signature scheme: https://docs.stripe.com/webhooks#verify-manually
(``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]``; ``v1`` is hex HMAC-SHA256 of
``{t}.{raw body}``; any matching ``v1`` is accepted, ``v0`` is ignored). Unlike stripe-python,
which accepts any future timestamp, the window is ±300 s both ways. The delivery id is the
event's ``id``, never ``request.idempotency_key``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from secrets import choice
from typing import TYPE_CHECKING, Any

from gateway.errors import InvalidSignature, MalformedPayload
from gateway.platforms._common import (
    any_secret_matches,
    check_timestamp,
    hmac_sha256_hex,
    parse_json_object,
    replace_delivery_id,
    require_str,
)
from gateway.types import Delivery, Handshake, Headers

if TYPE_CHECKING:  # annotations only: gateway.config imports the platforms
    from redis.asyncio import Redis
    from starlette.routing import BaseRoute

    from gateway.config import Settings

__all__ = [
    "default_max_body",
    "dev_secret",
    "job_path",
    "log_fields",
    "manifest",
    "max_body_variable",
    "name",
    "parse",
    "plain_headers",
    "probe",
    "renew_delivery_id",
    "secret_variable",
    "setup",
    "sign",
    "signature_headers",
    "variables",
    "verify",
    "web_routes",
]

name = "stripe"
job_path = "handlers.stripe.handle"
secret_variable = "STRIPE_WEBHOOK_SECRET"  # noqa: S105 - the name of a setting
max_body_variable = "STRIPE_MAX_BODY"
default_max_body = 1024 * 1024
dev_secret = "whsec_dev_stripe_webhook_secret"  # noqa: S105 - public on purpose, dev only
signature_headers = frozenset({"stripe-signature"})
variables = {
    secret_variable: "Stripe endpoint signing secret(s), comma-separated; turns the Stripe route on",
    "STRIPE_MAX_BODY": "largest Stripe body accepted, in bytes (default 1 MiB)",
}
manifest = None  # Stripe destinations are set up in the Dashboard or with the Stripe CLI
setup = None

_HINT = secret_variable
_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_DIGITS = re.compile(r"[0-9]{1,12}")
_KINDS = {"event": "snapshot", "v2.core.event": "thin"}


def verify(body: bytes, headers: Headers, *, secrets: tuple[str, ...], now: float) -> None:
    """Check ``Stripe-Signature``: any ``v1`` matching any secret, timestamp within ±300 s."""
    timestamp, signatures = _signature_header(headers.get("stripe-signature"))
    check_timestamp(int(timestamp), now, hint=_HINT)
    signed = timestamp.encode() + b"." + body
    if not any_secret_matches(secrets, signatures, lambda secret: hmac_sha256_hex(secret, signed)):
        raise InvalidSignature("no v1 signature in Stripe-Signature matches", hint=_HINT)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8", hint=_HINT) from None


def _signature_header(header: str | None) -> tuple[str, list[str]]:
    if not header:
        raise InvalidSignature("missing Stripe-Signature", hint=_HINT)
    items = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in items if key == "t"]
    signatures = [value for key, _, value in items if key == "v1"]
    if len(timestamps) != 1 or not _DIGITS.fullmatch(timestamps[0]):
        raise InvalidSignature("Stripe-Signature has no single numeric t=", hint=_HINT)
    if not signatures:
        raise InvalidSignature("Stripe-Signature has no v1= signature", hint=_HINT)
    return timestamps[0], signatures


def sign(secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """``Stripe-Signature: t=<timestamp>,v1=<hex>`` for ``body``."""
    signed = str(timestamp).encode() + b"." + body
    return {"Stripe-Signature": f"t={timestamp},v1={hmac_sha256_hex(secret, signed)}"}


def probe(body: bytes, headers: Headers) -> Handshake | None:
    """Stripe has no unsigned probes."""
    return None


def parse(body: bytes, headers: Headers) -> Delivery | Handshake:
    """A snapshot event carries its object; a thin event only points at it (the worker fetches it)."""
    payload = parse_json_object(body)
    object_type = payload.get("object")
    kind = _KINDS.get(object_type) if isinstance(object_type, str) else None
    if kind is None:
        raise MalformedPayload(f"not a Stripe event: object is {payload.get('object')!r}")
    meta: dict[str, Any] = {"kind": kind, "livemode": payload.get("livemode")}
    if kind == "snapshot":
        meta.update(account=payload.get("account"), api_version=payload.get("api_version"))
    else:
        # Thin events name a Connect account in ``context`` and point at ``related_object``.
        meta.update(account=payload.get("context"), related_object=payload.get("related_object"))
    return Delivery(
        delivery_id=require_str(payload, "id", where="Stripe event"),
        event=require_str(payload, "type", where="Stripe event"),
        action=None,
        payload=payload,
        meta=meta,
    )


def log_fields(headers: Headers) -> dict[str, Any]:
    """Stripe's headers add nothing to the log line beyond the event id."""
    return {}


def renew_delivery_id(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]] | None:
    """``body`` with a fresh event ``id`` (``evt_`` and 24 letters and digits, as Stripe's)."""
    return replace_delivery_id(parse, body, headers, _fresh_id)


def plain_headers(*, event: str | None) -> dict[str, str]:
    """Stripe posts JSON with a charset; the event type is in the body."""
    return {"Content-Type": "application/json; charset=utf-8", "User-Agent": "gateway-replay"}


def _fresh_id(old: str) -> str:
    return "evt_" + "".join(choice(_ALPHANUMERIC) for _ in range(24))


def web_routes(settings: Settings, redis: Callable[[], Redis]) -> list[BaseRoute]:
    """None: everything Stripe sends comes to the webhook."""
    return []
