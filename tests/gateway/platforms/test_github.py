"""GitHub signature verification and body parsing."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from gateway.errors import InvalidSignature, MalformedPayload
from gateway.platforms import github
from gateway.types import Delivery, Handshake
from tests.support.signing import github_headers

SECRET = "test-github-secret"


def _headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {k.lower(): v for k, v in github_headers(secret, body).items()}


def test_github_documented_example_verifies() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    github.verify(
        b"Hello, World!", {"x-hub-signature-256": signature}, secrets=("It's a Secret to Everybody",), now=0
    )


def test_tampered_body_is_refused() -> None:
    headers = _headers(b'{"action":"opened"}')
    with pytest.raises(InvalidSignature):
        github.verify(b'{"action":"closed"}', headers, secrets=(SECRET,), now=0)


def test_sha1_only_request_is_refused_even_when_its_signature_is_right() -> None:
    headers = _headers(b"{}")
    del headers["x-hub-signature-256"]
    with pytest.raises(InvalidSignature, match="SHA-1"):
        github.verify(b"{}", headers, secrets=(SECRET,), now=0)


def test_missing_signature_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        github.verify(b"{}", {}, secrets=(SECRET,), now=0)


def test_second_secret_is_accepted_during_rotation() -> None:
    github.verify(b"{}", _headers(b"{}", "new"), secrets=("old", "new"), now=0)


def _meta_headers(event: str, **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "x-github-event": event, "x-github-delivery": "d-1", **extra}


def test_event_and_action_come_from_header_and_body() -> None:
    body = json.dumps({"action": "opened", "installation": {"id": 42}}).encode()
    result = github.parse(body, _meta_headers("issues", **{"x-github-hook-id": "7"}))
    assert isinstance(result, Delivery)
    assert (result.delivery_id, result.event, result.action) == ("d-1", "issues", "opened")
    assert result.meta == {"installation_id": 42, "hook_id": "7", "target_type": None, "content_type": "json"}


def test_event_without_action_has_none() -> None:
    result = github.parse(b'{"ref": "refs/heads/main"}', _meta_headers("push"))
    assert isinstance(result, Delivery) and result.action is None and result.meta["installation_id"] is None


def test_form_encoded_delivery_is_read_from_the_payload_field() -> None:
    body = urlencode({"payload": json.dumps({"action": "created", "comment": {"body": "a&b=c"}})}).encode()
    headers = {**_meta_headers("issue_comment"), "content-type": "application/x-www-form-urlencoded"}
    result = github.parse(body, headers)
    assert isinstance(result, Delivery)
    assert result.payload["comment"]["body"] == "a&b=c" and result.meta["content_type"] == "form"


def test_ping_is_a_handshake() -> None:
    assert isinstance(
        github.parse(b'{"zen": "Keep it logically awesome."}', _meta_headers("ping")), Handshake
    )


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{}", {"x-github-delivery": "d"}, "X-GitHub-Event"),
        (b"{}", {"x-github-event": "issues"}, "X-GitHub-Delivery"),
        (b"{oops", _meta_headers("issues"), "not valid JSON"),
        (
            b"a=b",
            {**_meta_headers("issues"), "content-type": "application/x-www-form-urlencoded"},
            "no payload",
        ),
    ],
)
def test_malformed_deliveries_say_what_is_wrong(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        github.parse(body, headers)
