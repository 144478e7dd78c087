"""Slack's inbound requests: the Events API (JSON), slash commands and interactivity (form-encoded).

Signature scheme: https://api.slack.com/authentication/verifying-requests-from-slack
(``v0=`` + hex HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{raw body}``).
Delivery ids: ``event_id`` for events; slash commands and interactivity carry none, so their
``trigger_id`` stands in. Retries (``X-Slack-Retry-Num``) keep the ``event_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from secrets import randbelow, token_hex
from typing import Any

from gateway.errors import InvalidSignature, MalformedPayload
from gateway.platforms._common import (
    any_secret_matches,
    check_timestamp,
    hmac_sha256_hex,
    is_form,
    parse_form,
    parse_json_object,
    replace_delivery_id,
    require_str,
)
from gateway.types import Delivery, Handshake, Headers

__all__ = [
    "SECRET_VARIABLE",
    "SIGNATURE_HEADERS",
    "SOCKET_ENVELOPE_TYPES",
    "log_fields",
    "parse",
    "parse_socket_envelope",
    "plain_headers",
    "probe",
    "renew_delivery_id",
    "sign",
    "verify",
]

SECRET_VARIABLE = "SLACK_SIGNING_SECRET"  # noqa: S105 - the name of a setting
SIGNATURE_HEADERS = frozenset({"x-slack-signature", "x-slack-request-timestamp"})

SOCKET_ENVELOPE_TYPES = frozenset({"events_api", "slash_commands", "interactive"})
"""Socket Mode envelope types that carry a delivery (https://api.slack.com/apis/socket-mode)."""

_HINT = SECRET_VARIABLE
_DIGITS = re.compile(r"[0-9]{1,12}")


def verify(body: bytes, headers: Headers, *, secrets: tuple[str, ...], now: float) -> None:
    """Check ``X-Slack-Signature`` against every configured secret, within ±300 s."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise InvalidSignature("missing X-Slack-Request-Timestamp or X-Slack-Signature", hint=_HINT)
    if not _DIGITS.fullmatch(timestamp):
        raise InvalidSignature("X-Slack-Request-Timestamp is not a number", hint=_HINT)
    check_timestamp(int(timestamp), now, hint=_HINT)
    base = b"v0:" + timestamp.encode() + b":" + body
    if not any_secret_matches(secrets, [signature], lambda secret: "v0=" + hmac_sha256_hex(secret, base)):
        raise InvalidSignature("X-Slack-Signature does not match", hint=_HINT)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8", hint=_HINT) from None


def sign(secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body`` at ``timestamp``."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": "v0=" + hmac_sha256_hex(secret, base),
    }


def probe(body: bytes, headers: Headers) -> Handshake | None:
    """Answer Slack's ``ssl_check`` probe, which Slack sends unsigned (Bolt answers it the same way).

    Nothing is queued for it, so answering before verification exposes nothing. The field may
    come anywhere in the form (Slack also sends ``token=...&ssl_check=1``), so the form is parsed;
    a slash command, which never has the field, is not taken for one.
    """
    if not is_form(headers.get("content-type")) or b"ssl_check" not in body:
        return None
    try:
        form = parse_form(body)
    except MalformedPayload:
        return None
    if form.get("ssl_check") == "1" and "command" not in form:
        return Handshake("ssl_check", {})
    return None


def parse(body: bytes, headers: Headers) -> Delivery | Handshake:
    """Turn a verified body into a delivery; ``url_verification`` becomes a handshake.

    The content type decides the shape: a form with a ``payload`` field and no ``command`` is
    interactivity; any other form is a slash command (whose text may well contain "payload").
    """
    meta = _retry_meta(headers)
    if is_form(headers.get("content-type")):
        form = parse_form(body)
        if "payload" in form and "command" not in form:
            return _interactive(parse_json_object(form["payload"], what="payload field"), meta)
        return _command(form, meta)
    return _event(parse_json_object(body), meta)


def parse_socket_envelope(
    envelope_type: str, payload: Any, *, retry_attempt: int | None, retry_reason: str | None
) -> Delivery | Handshake:
    """A Socket Mode envelope as the same delivery its HTTP twin would be.

    Socket Mode carries the body HTTP would (an Events API ``event_callback``, a slash command's
    fields, an interactivity payload), already parsed, so the ids, event names and ``meta`` are
    the HTTP path's. ``retry_attempt`` 0 is a first delivery, as HTTP's absent retry header is.
    """
    if not isinstance(payload, dict):
        raise MalformedPayload(f"{envelope_type} envelope has no payload object")
    meta: dict[str, Any] = {"retry_num": retry_attempt or None, "retry_reason": retry_reason or None}
    if envelope_type == "events_api":
        return _event(payload, meta)
    if envelope_type == "slash_commands":
        return _command({str(key): str(value) for key, value in payload.items()}, meta)
    if envelope_type == "interactive":
        return _interactive(payload, meta)
    raise MalformedPayload(f"unsupported Socket Mode envelope type {envelope_type!r}")


def log_fields(headers: Headers) -> dict[str, Any]:
    """Slack's retry number and reason, as sent (capped), for the delivery's log line."""
    retry_num = headers.get("x-slack-retry-num")
    if retry_num is None:
        return {}
    return {"retry_num": retry_num[:8], "retry_reason": headers.get("x-slack-retry-reason", "")[:40]}


def renew_delivery_id(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]] | None:
    """``body`` with a fresh ``event_id`` (events) or ``trigger_id`` (commands, interactivity)."""
    return replace_delivery_id(parse, body, headers, _fresh_id)


def plain_headers(*, event: str | None) -> dict[str, str]:
    """A plain Events API payload is JSON; the event is in the body."""
    return {"Content-Type": "application/json", "User-Agent": "gateway-replay"}


def _fresh_id(old: str) -> str:
    """An id shaped like Slack's: ``Ev…`` event ids, else trigger ids (digits, dots and hex, which
    read the same URL-encoded)."""
    if old.startswith("Ev"):
        return "Ev" + token_hex(6).upper()
    return f"{randbelow(10**10):010d}.{randbelow(10**9):09d}.{token_hex(10)}"


def _retry_meta(headers: Headers) -> dict[str, Any]:
    retry_num = headers.get("x-slack-retry-num")
    return {
        "retry_num": int(retry_num) if retry_num and _DIGITS.fullmatch(retry_num) else None,
        "retry_reason": headers.get("x-slack-retry-reason"),
    }


def _event(body: dict[str, Any], meta: dict[str, Any]) -> Delivery | Handshake:
    kind = body.get("type")
    if kind == "url_verification":
        return Handshake(
            "url_verification", {"challenge": require_str(body, "challenge", where="url_verification")}
        )
    if kind == "app_rate_limited":
        # Slack's notice that events are being dropped for this app: acknowledged, nothing to run.
        return Handshake("app_rate_limited", {})
    if kind != "event_callback":
        raise MalformedPayload(f"unsupported Slack body type {kind!r}")
    event = body.get("event")
    if not isinstance(event, dict):
        raise MalformedPayload("event_callback has no event object")
    meta.update(kind="event", team_id=body.get("team_id"), api_app_id=body.get("api_app_id"))
    return Delivery(
        delivery_id=require_str(body, "event_id", where="event_callback"),
        event=_event_name(event),
        action=None,
        payload=body,
        meta=meta,
    )


def _event_name(event: dict[str, Any]) -> str:
    """``app_mention``, ``message.im``, ``message.channels``...: Slack's own subscription names."""
    event_type = require_str(event, "type", where="event")
    channel_type = event.get("channel_type")
    if event_type == "message" and isinstance(channel_type, str) and channel_type:
        return f"message.{channel_type}"
    return event_type


def _command(form: dict[str, str], meta: dict[str, Any]) -> Delivery:
    meta.update(kind="command", team_id=form.get("team_id"), api_app_id=form.get("api_app_id"))
    return Delivery(
        delivery_id=require_str(form, "trigger_id", where="slash command"),
        event="slash_command",
        action=require_str(form, "command", where="slash command"),
        payload=dict(form),
        meta=meta,
        # Slack shows a slash command's acknowledgement to its user; the answer follows later.
        ack={"response_type": "ephemeral", "text": "Working on it…"},
    )


def _interactive(payload: dict[str, Any], meta: dict[str, Any]) -> Delivery:
    kind = require_str(payload, "type", where="interactivity payload")
    team = payload.get("team")
    meta.update(
        kind="interactive",
        team_id=team.get("id") if isinstance(team, dict) else None,
        api_app_id=payload.get("api_app_id"),
    )
    return Delivery(
        delivery_id=require_str(payload, "trigger_id", where=f"{kind} payload"),
        event=kind,
        action=_interactive_action(payload),
        payload=payload,
        meta=meta,
    )


def _interactive_action(payload: dict[str, Any]) -> str | None:
    """The id the app routes on: the first action's ``action_id``, a view's or shortcut's callback."""
    actions = payload.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        action_id = actions[0].get("action_id")
        return action_id if isinstance(action_id, str) else None
    view = payload.get("view")
    if isinstance(view, dict) and isinstance(view.get("callback_id"), str):
        return str(view["callback_id"])
    callback_id = payload.get("callback_id")
    return callback_id if isinstance(callback_id, str) else None
