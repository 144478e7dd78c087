"""Stripe signature verification and event parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe

from gateway.errors import InvalidSignature, MalformedPayload, StaleTimestamp
from gateway.platforms import stripe as stripe_platform
from gateway.types import Delivery
from tests.support.signing import stripe_headers

SECRET = "whsec_test_secret"
NOW = 1_700_000_000
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "stripe"


def _headers(body: bytes, *, timestamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {"stripe-signature": stripe_headers(secret, body, timestamp)["Stripe-Signature"]}


def test_signature_made_by_stripe_python_verifies() -> None:
    body = b'{"id": "evt_1", "object": "event"}'
    header = stripe.WebhookSignature._compute_signature(f"{NOW}.{body.decode()}", SECRET)
    stripe_platform.verify(body, {"stripe-signature": f"t={NOW},v1={header}"}, secrets=(SECRET,), now=NOW)


def test_any_matching_v1_is_accepted_and_v0_ignored() -> None:
    body = b"{}"
    header = stripe_headers("other", body, NOW, extra_secrets=(SECRET,))["Stripe-Signature"]
    stripe_platform.verify(body, {"stripe-signature": header}, secrets=(SECRET,), now=NOW)


def test_v0_alone_is_refused() -> None:
    header = (
        f"t={NOW},v0=" + stripe_headers(SECRET, b"{}", NOW)["Stripe-Signature"].split("v1=")[1].split(",")[0]
    )
    with pytest.raises(InvalidSignature, match="no v1"):
        stripe_platform.verify(b"{}", {"stripe-signature": header}, secrets=(SECRET,), now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, 3600])
def test_timestamps_beyond_five_minutes_either_way_are_stale(offset: int) -> None:
    # stripe-python accepts any future timestamp; the gateway does not.
    with pytest.raises(StaleTimestamp):
        stripe_platform.verify(b"{}", _headers(b"{}", timestamp=NOW + offset), secrets=(SECRET,), now=NOW)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=abc,v1=abc", "t=1,t=2,v1=abc", "garbage", "t=,v1="])
def test_malformed_signature_headers_are_refused(header: str) -> None:
    with pytest.raises(InvalidSignature):
        stripe_platform.verify(b"{}", {"stripe-signature": header}, secrets=(SECRET,), now=NOW)


def test_secret_rotation_accepts_either_secret() -> None:
    stripe_platform.verify(b"{}", _headers(b"{}", secret="whsec_new"), secrets=(SECRET, "whsec_new"), now=NOW)


def test_snapshot_event_recorded_from_stripes_published_examples() -> None:
    body = (FIXTURES / "invoice.payment_failed.body").read_bytes()
    result = stripe_platform.parse(body, {})
    assert isinstance(result, Delivery)
    assert result.event == "invoice.payment_failed" and result.delivery_id == json.loads(body)["id"]
    assert result.meta["kind"] == "snapshot" and result.meta["account"] is None


def test_thin_event_is_marked_thin() -> None:
    body = (FIXTURES / "v1.billing.meter.error_report_triggered.body").read_bytes()
    result = stripe_platform.parse(body, {})
    assert isinstance(result, Delivery)
    assert result.meta["kind"] == "thin" and result.event == "v1.billing.meter.error_report_triggered"


def test_connect_event_carries_the_account() -> None:
    body = json.dumps(
        {"id": "evt_1", "object": "event", "type": "charge.failed", "account": "acct_9"}
    ).encode()
    result = stripe_platform.parse(body, {})
    assert isinstance(result, Delivery) and result.meta["account"] == "acct_9"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"id": "evt_1", "object": "charge"}', "not a Stripe event"),
        (b'{"object": "event", "type": "charge.failed"}', "no id"),
        (b'{"object": "event", "id": "evt_1"}', "no type"),
        (b"[]", "not an object"),
    ],
)
def test_malformed_events_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        stripe_platform.parse(body, {})
