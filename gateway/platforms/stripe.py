"""Stripe: snapshot events (``"object": "event"``) and thin event notifications (``"v2.core.event"``).

Signature scheme: https://docs.stripe.com/webhooks#verify-manually
(``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]``; ``v1`` is hex HMAC-SHA256 of
``{t}.{raw body}``; any matching ``v1`` is accepted, ``v0`` is ignored). Unlike stripe-python,
which accepts any future timestamp, the window is ±300 s both ways. The delivery id is the
event's ``id``, never ``request.idempotency_key``.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import InvalidSignature, MalformedPayload
from gateway.platforms._common import (
    any_secret_matches,
    check_timestamp,
    hmac_sha256_hex,
    parse_json_object,
    require_str,
)
from gateway.types import Delivery, Handshake, Headers

name = "stripe"
job_path = "handlers.stripe.handle"

_HINT = "STRIPE_WEBHOOK_SECRET"
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
