"""Helpers the platform modules share: HMAC comparison, body decoding, delivery-id rewriting."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.errors import GatewayError, MalformedPayload, StaleTimestamp
from gateway.types import Delivery, Handshake, Headers

TOLERANCE_SECONDS = 300


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` keyed with ``secret``."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def any_secret_matches(secrets: tuple[str, ...], provided: list[str], sign: Callable[[str], str]) -> bool:
    """True when some secret signs to some provided signature (constant-time per comparison).

    Several secrets exist during rotation; several signatures exist when Stripe rolls a secret.
    Every pair is compared so the time taken does not depend on which one matched.
    """
    matched = False
    for secret in secrets:
        expected = sign(secret).encode()
        for candidate in provided:
            matched |= hmac.compare_digest(expected, candidate.encode())
    return matched


def check_timestamp(timestamp: int, now: float, *, hint: str) -> None:
    """Refuse timestamps more than five minutes away from ``now``, in the past or the future."""
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise StaleTimestamp(f"timestamp {timestamp} is {now - timestamp:+.0f}s from now", hint=hint)


def parse_json_object(body: bytes | str, *, what: str = "body") -> dict[str, Any]:
    """Parse a JSON object or raise ``MalformedPayload`` saying what was wrong."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedPayload(f"{what} is JSON but not an object")
    return value


def parse_form(body: bytes) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body; the last value of a repeated key wins."""
    try:
        text = body.decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"form body cannot be parsed: {exc}") from None


def is_form(content_type: str | None) -> bool:
    """True for ``application/x-www-form-urlencoded`` (parameters such as charset ignored)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/x-www-form-urlencoded"


def require_str(mapping: dict[str, Any], key: str, *, where: str) -> str:
    """``mapping[key]`` as a non-empty string, or ``MalformedPayload`` naming it."""
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{where} has no {key}")
    return value


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with lower-case names, as the app passes them to a platform."""
    return {name.lower(): value for name, value in headers.items()}


def replace_delivery_id(
    parse: Callable[[bytes, Headers], Delivery | Handshake],
    body: bytes,
    headers: Mapping[str, str],
    fresh: Callable[[str], str],
) -> tuple[bytes, dict[str, str]] | None:
    """``body`` with its delivery id (as ``parse`` finds it) replaced by ``fresh(old)``.

    The new id has the old one's alphabet, so JSON, form and URL-encoded JSON stay valid; the
    body is parsed again to prove the id changed (``MalformedPayload`` otherwise). ``None`` for
    handshakes and bodies the parser refuses.
    """
    lowered = lower_keys(headers)
    old = _delivery_id(parse, body, lowered)
    if old is None:
        return None
    new = fresh(old)
    renewed = body.replace(old.encode(), new.encode())
    if _delivery_id(parse, renewed, lowered) != new:
        raise MalformedPayload(f"could not rewrite delivery id {old}")
    return renewed, dict(headers)


def _delivery_id(
    parse: Callable[[bytes, Headers], Delivery | Handshake], body: bytes, headers: Headers
) -> str | None:
    try:
        parsed = parse(body, headers)
    except GatewayError:
        return None
    return parsed.delivery_id if isinstance(parsed, Delivery) else None
