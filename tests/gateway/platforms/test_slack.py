"""Slack signature verification and body parsing."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from gateway.errors import InvalidSignature, MalformedPayload, StaleTimestamp
from gateway.platforms import slack
from gateway.types import Delivery, Handshake
from tests.support.signing import slack_headers

# Slack's worked example: https://api.slack.com/authentication/verifying-requests-from-slack
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = 1531420618
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SECRET = "test-slack-secret"
NOW = 1_700_000_000


def _headers(body: bytes, *, secret: str = SECRET, timestamp: int = NOW, **extra: str) -> dict[str, str]:
    headers = {k.lower(): v for k, v in slack_headers(secret, body, timestamp).items()}
    return {**headers, **extra}


def test_slack_published_example_verifies() -> None:
    headers = {"x-slack-request-timestamp": str(DOC_TIMESTAMP), "x-slack-signature": DOC_SIGNATURE}
    slack.verify(DOC_BODY, headers, secrets=(DOC_SECRET,), now=DOC_TIMESTAMP + 10)


def test_slack_published_example_fails_with_one_byte_changed() -> None:
    headers = {"x-slack-request-timestamp": str(DOC_TIMESTAMP), "x-slack-signature": DOC_SIGNATURE}
    with pytest.raises(InvalidSignature):
        slack.verify(
            DOC_BODY.replace(b"foobar", b"foobaz"), headers, secrets=(DOC_SECRET,), now=DOC_TIMESTAMP
        )


def test_any_of_several_secrets_is_accepted_during_rotation() -> None:
    body = b'{"type":"event_callback"}'
    slack.verify(body, _headers(body, secret="new"), secrets=("old", "new"), now=NOW)


def test_wrong_secret_is_refused() -> None:
    body = b"{}"
    with pytest.raises(InvalidSignature):
        slack.verify(body, _headers(body, secret="other"), secrets=(SECRET,), now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(offset: int) -> None:
    body = b"{}"
    slack.verify(body, _headers(body, timestamp=NOW + offset), secrets=(SECRET,), now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_timestamps_beyond_five_minutes_either_way_are_stale(offset: int) -> None:
    body = b"{}"
    with pytest.raises(StaleTimestamp):
        slack.verify(body, _headers(body, timestamp=NOW + offset), secrets=(SECRET,), now=NOW)


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "1e9", "-1700000000", "١٧٠٠٠٠٠٠٠٠", " 1700000000", "9" * 40]
)
def test_non_numeric_timestamp_is_an_invalid_signature(timestamp: str) -> None:
    headers = {"x-slack-request-timestamp": timestamp, "x-slack-signature": "v0=00"}
    with pytest.raises(InvalidSignature):
        slack.verify(b"{}", headers, secrets=(SECRET,), now=NOW)


@pytest.mark.parametrize("missing", ["x-slack-request-timestamp", "x-slack-signature"])
def test_missing_headers_are_an_invalid_signature(missing: str) -> None:
    headers = _headers(b"{}")
    del headers[missing]
    with pytest.raises(InvalidSignature):
        slack.verify(b"{}", headers, secrets=(SECRET,), now=NOW)


def test_correctly_signed_non_utf8_body_is_refused() -> None:
    body = b'{"text": "\xff\xfe"}'
    with pytest.raises(InvalidSignature, match="UTF-8"):
        slack.verify(body, _headers(body), secrets=(SECRET,), now=NOW)


def test_refusal_reason_never_contains_the_signature_or_secret() -> None:
    headers = _headers(b"{}", secret="s3cret-value")
    with pytest.raises(InvalidSignature) as caught:
        slack.verify(b"{}", headers, secrets=(SECRET,), now=NOW)
    assert headers["x-slack-signature"] not in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "SLACK_SIGNING_SECRET" in str(caught.value)


JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _callback(event: dict[str, object], **extra: object) -> bytes:
    body = {"type": "event_callback", "event_id": "Ev01", "team_id": "T1", "api_app_id": "A1", "event": event}
    return json.dumps({**body, **extra}).encode()


def test_app_mention_is_a_delivery_keyed_by_event_id() -> None:
    result = slack.parse(_callback({"type": "app_mention", "text": "hi"}), JSON)
    assert isinstance(result, Delivery)
    assert (result.delivery_id, result.event, result.action) == ("Ev01", "app_mention", None)
    assert result.meta == {
        "kind": "event",
        "team_id": "T1",
        "api_app_id": "A1",
        "retry_num": None,
        "retry_reason": None,
    }


def test_direct_message_is_named_message_im() -> None:
    result = slack.parse(_callback({"type": "message", "channel_type": "im"}), JSON)
    assert isinstance(result, Delivery) and result.event == "message.im"


def test_retry_headers_are_carried_in_meta() -> None:
    headers = {**JSON, "x-slack-retry-num": "2", "x-slack-retry-reason": "http_timeout"}
    result = slack.parse(_callback({"type": "app_mention"}), headers)
    assert isinstance(result, Delivery)
    assert (result.meta["retry_num"], result.meta["retry_reason"]) == (2, "http_timeout")


def test_url_verification_is_a_handshake_echoing_the_challenge() -> None:
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"}).encode()
    assert slack.parse(body, JSON) == Handshake("url_verification", {"challenge": "c-123"})


def test_slash_command_whose_text_mentions_payload_is_still_a_command() -> None:
    form = {"command": "/triage", "text": "explain payload={} please", "trigger_id": "1.2.3", "team_id": "T1"}
    result = slack.parse(urlencode(form).encode(), FORM)
    assert isinstance(result, Delivery)
    assert (result.event, result.action, result.delivery_id) == ("slash_command", "/triage", "1.2.3")
    assert result.payload["text"] == "explain payload={} please"
    assert result.ack is not None and result.ack["response_type"] == "ephemeral"


def test_slash_command_with_a_payload_field_is_still_a_command() -> None:
    form = {"command": "/triage", "payload": "not json", "trigger_id": "1.2.3"}
    result = slack.parse(urlencode(form).encode(), FORM)
    assert isinstance(result, Delivery) and result.event == "slash_command"


def test_interactivity_is_parsed_from_the_payload_field() -> None:
    payload = {
        "type": "block_actions",
        "trigger_id": "9.8.7",
        "team": {"id": "T9"},
        "actions": [{"action_id": "approve"}],
    }
    result = slack.parse(urlencode({"payload": json.dumps(payload)}).encode(), FORM)
    assert isinstance(result, Delivery)
    assert (result.event, result.action, result.delivery_id) == ("block_actions", "approve", "9.8.7")
    assert result.meta["kind"] == "interactive" and result.meta["team_id"] == "T9"


def test_view_submission_action_is_the_view_callback_id() -> None:
    payload = {"type": "view_submission", "trigger_id": "1.1", "view": {"callback_id": "feedback"}}
    result = slack.parse(urlencode({"payload": json.dumps(payload)}).encode(), FORM)
    assert isinstance(result, Delivery) and result.action == "feedback"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{not json", JSON, "not valid JSON"),
        (b"[1, 2]", JSON, "not an object"),
        (b'{"type": "event_callback", "event": {"type": "app_mention"}}', JSON, "no event_id"),
        (b'{"type": "event_callback", "event_id": "Ev1"}', JSON, "no event object"),
        (b'{"type": "something_else"}', JSON, "unsupported"),
        (b"payload=%7Bbroken", FORM, "payload field is not valid JSON"),
        (b"command=%2Ftriage&text=x", FORM, "no trigger_id"),
        (
            b"payload=" + urlencode({"x": json.dumps({"type": "view_closed"})})[2:].encode(),
            FORM,
            "no trigger_id",
        ),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        slack.parse(body, headers)


def test_ssl_check_is_answered_as_a_probe() -> None:
    assert slack.probe(b"ssl_check=1&token=abc", FORM) == Handshake("ssl_check", {})
    assert slack.probe(b"token=abc&ssl_check=1", FORM) == Handshake("ssl_check", {})
    assert slack.probe(b"command=%2Fx&text=ssl_check=1", FORM) is None
    assert slack.probe(b"command=%2Fx&ssl_check=1", FORM) is None
    assert slack.probe(b"token=abc&ssl_check=0", FORM) is None
    assert slack.probe(b"ssl_check=1", JSON) is None
