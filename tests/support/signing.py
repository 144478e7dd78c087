"""Sign requests the way each platform does, written independently of the gateway's verifiers."""

from __future__ import annotations

import hashlib
import hmac


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def slack_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body``."""
    signature = "v0=" + _hex(secret, f"v0:{timestamp}:".encode() + body)
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


def github_headers(secret: str, body: bytes) -> dict[str, str]:
    """``X-Hub-Signature-256`` (and the legacy SHA-1 header GitHub also sends)."""
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Hub-Signature-256": "sha256=" + _hex(secret, body), "X-Hub-Signature": "sha1=" + sha1}


def stripe_headers(
    secret: str, body: bytes, timestamp: int, *, extra_secrets: tuple[str, ...] = ()
) -> dict[str, str]:
    """``Stripe-Signature`` with a ``v1`` per secret and a decoy ``v0``, as Stripe sends while rolling."""
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"] + [f"v1={_hex(s, signed)}" for s in (secret, *extra_secrets)]
    parts.append("v0=" + "0" * 64)
    return {"Stripe-Signature": ",".join(parts)}


def sign(platform: str, secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The signature headers of ``platform`` for ``body`` at ``timestamp``."""
    if platform == "slack":
        return slack_headers(secret, body, timestamp)
    if platform == "github":
        return github_headers(secret, body)
    if platform == "stripe":
        return stripe_headers(secret, body, timestamp)
    raise ValueError(platform)
