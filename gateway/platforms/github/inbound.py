"""GitHub's inbound requests: every webhook event, as a repository/organization webhook or a GitHub App.

Signature scheme: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
(``sha256=`` + hex HMAC-SHA256 of the raw body in ``X-Hub-Signature-256``; the SHA-1
``X-Hub-Signature`` alone is refused). GitHub sends no timestamp, so there is no replay window:
the delivery id claim is what stops a replayed delivery from running twice. Redeliveries keep
``X-GitHub-Delivery``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from gateway.errors import InvalidSignature, MalformedPayload, UsageError
from gateway.platforms._common import (
    any_secret_matches,
    hmac_sha256_hex,
    is_form,
    parse_form,
    parse_json_object,
)
from gateway.types import Delivery, Handshake, Headers

__all__ = [
    "SECRET_VARIABLE",
    "SIGNATURE_HEADERS",
    "log_fields",
    "parse",
    "plain_headers",
    "probe",
    "renew_delivery_id",
    "sign",
    "verify",
]

SECRET_VARIABLE = "GITHUB_WEBHOOK_SECRET"  # noqa: S105 - the name of a setting
# X-Hub-Signature is GitHub's legacy SHA-1 header: dropped from recordings like the one we check.
SIGNATURE_HEADERS = frozenset({"x-hub-signature-256", "x-hub-signature"})

_HINT = SECRET_VARIABLE


def verify(body: bytes, headers: Headers, *, secrets: tuple[str, ...], now: float) -> None:
    """Check ``X-Hub-Signature-256`` against every configured secret (``now`` is unused)."""
    signature = headers.get("x-hub-signature-256")
    if not signature:
        if headers.get("x-hub-signature"):
            raise InvalidSignature(
                "only the SHA-1 X-Hub-Signature was sent; X-Hub-Signature-256 is required", hint=_HINT
            )
        raise InvalidSignature("missing X-Hub-Signature-256", hint=_HINT)
    if not any_secret_matches(secrets, [signature], lambda secret: "sha256=" + hmac_sha256_hex(secret, body)):
        raise InvalidSignature("X-Hub-Signature-256 does not match", hint=_HINT)


def sign(secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """``X-Hub-Signature-256`` for ``body``; GitHub signs the body only, so ``timestamp`` is unused."""
    return {"X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body)}


def probe(body: bytes, headers: Headers) -> Handshake | None:
    """GitHub has no unsigned probes."""
    return None


def parse(body: bytes, headers: Headers) -> Delivery | Handshake:
    """Event from ``X-GitHub-Event`` plus the body's ``action``; ``ping`` is answered, not queued.

    Webhooks may be configured with content type ``application/x-www-form-urlencoded``, in which
    case the JSON arrives in the ``payload`` form field.
    """
    event = headers.get("x-github-event")
    delivery_id = headers.get("x-github-delivery")
    if not event:
        raise MalformedPayload("missing X-GitHub-Event header")
    if not delivery_id:
        raise MalformedPayload("missing X-GitHub-Delivery header")
    form = is_form(headers.get("content-type"))
    payload = _payload(body, form=form)
    if event == "ping":
        return Handshake("ping", {"ok": True})
    action = payload.get("action")
    return Delivery(
        delivery_id=delivery_id,
        event=event,
        action=action if isinstance(action, str) else None,
        payload=payload,
        meta={
            "installation_id": _installation_id(payload),
            "hook_id": headers.get("x-github-hook-id"),
            "target_type": headers.get("x-github-hook-installation-target-type"),
            "content_type": "form" if form else "json",
        },
    )


def log_fields(headers: Headers) -> dict[str, Any]:
    """GitHub's headers add nothing to the log line beyond the delivery id."""
    return {}


def renew_delivery_id(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]] | None:
    """A fresh ``X-GitHub-Delivery`` (a UUID, as GitHub's); the body carries no delivery id."""
    kept = {name: value for name, value in headers.items() if name.lower() != "x-github-delivery"}
    return body, {**kept, "X-GitHub-Delivery": str(uuid.uuid4())}


def plain_headers(*, event: str | None) -> dict[str, str]:
    """GitHub names the event in ``X-GitHub-Event`` and each delivery in ``X-GitHub-Delivery``."""
    if not event:
        raise UsageError("a plain GitHub payload needs --event (its X-GitHub-Event)")
    return {
        "Content-Type": "application/json",
        "User-Agent": "gateway-replay",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }


def _payload(body: bytes, *, form: bool) -> dict[str, Any]:
    if not form:
        return parse_json_object(body)
    fields = parse_form(body)
    if "payload" not in fields:
        raise MalformedPayload("form-encoded delivery has no payload field")
    return parse_json_object(fields["payload"], what="payload field")


def _installation_id(payload: dict[str, Any]) -> int | None:
    """The GitHub App installation the event belongs to; absent for plain repository webhooks."""
    installation = payload.get("installation")
    if isinstance(installation, dict) and isinstance(installation.get("id"), int):
        return int(installation["id"])
    return None
