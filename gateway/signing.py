"""Sign outgoing requests the way each platform signs its webhooks (used by ``gateway replay``).

The inverse of each platform module's ``verify``; the schemes are documented at
https://api.slack.com/authentication/verifying-requests-from-slack,
https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries and
https://docs.stripe.com/webhooks#verify-manually. Tests sign with their own independent code
(``tests/support/signing.py``), so a mistake here cannot hide one in the verifiers.
"""

from __future__ import annotations

from gateway.platforms._common import hmac_sha256_hex


def sign(platform: str, secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """The signature headers ``platform`` would send with ``body`` at ``timestamp``.

    Raises ``ValueError`` for a platform this module does not know.
    """
    if platform == "slack":
        base = b"v0:" + str(timestamp).encode() + b":" + body
        return {
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": "v0=" + hmac_sha256_hex(secret, base),
        }
    if platform == "github":
        # GitHub signs the body only; the timestamp has no part in its scheme.
        return {"X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body)}
    if platform == "stripe":
        signed = str(timestamp).encode() + b"." + body
        return {"Stripe-Signature": f"t={timestamp},v1={hmac_sha256_hex(secret, signed)}"}
    raise ValueError(f"no signature scheme for platform {platform!r}")
