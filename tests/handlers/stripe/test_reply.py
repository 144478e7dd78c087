"""Stripe results: current state read first, metadata written once, optional Slack announcement."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis

from gateway.types import Envelope
from handlers.state import runs
from handlers.stripe import handle
from tests.e2e.support import Ingress, ingress, recording, with_json
from tests.fakes import SlackFake, StripeFake

CHARGE_EVENT = "evt_1jTwr6ZQLikIubkNcFk2VUaI"
CONNECT = "acct_1PqR7sT9uVwX2yZ3"
ZEROS = "0" * 24


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url) as app:
        yield app


@pytest.fixture
def stripe_api(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeFake]:
    with StripeFake() as fake:
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", fake.base_url)
        monkeypatch.setenv("GATEWAY_AGENT", "triage")
        yield fake


def _queued(gateway: Ingress, name: str, body: bytes | None = None) -> Envelope:
    rec = recording("stripe", name)
    assert gateway.post_recording(rec, body=body) == 200
    return gateway.envelope(rec.expect["job_id"])  # type: ignore[index]


def test_failed_charge_is_summarised_from_its_current_state_and_annotated_once(
    stripe_api: StripeFake, gateway: Ingress
) -> None:
    stripe_api.seed(
        "charge", f"ch_{ZEROS}", amount=2000, status="failed", customer="cus_NOW",
        failure_message="Your card was declined.", failure_code="card_declined",
    )  # fmt: skip
    envelope = _queued(gateway, "charge.failed")
    result = asyncio.run(handle(envelope))
    asyncio.run(handle(envelope))
    text = result["reply"]
    assert "Customer: cus_NOW" in text and "Amount: $20.00" in text
    assert "Failure: Your card was declined. (`card_declined`)" in text
    assert f"https://dashboard.stripe.com/test/payments/ch_{ZEROS}" in text
    (write,) = stripe_api.calls("POST", "/v1/charges/*")
    assert write.headers["idempotency-key"].startswith(f"gateway-{CHARGE_EVENT}-")
    metadata = stripe_api.get("charge", f"ch_{ZEROS}")["metadata"]  # type: ignore[index]
    assert metadata["gateway_delivery"] == CHARGE_EVENT
    assert metadata["gateway_summary"].startswith("Stripe charge.failed: charge ch_")


def test_connect_events_read_and_write_on_the_connected_account(
    stripe_api: StripeFake, gateway: Ingress
) -> None:
    stripe_api.seed(
        "payment_intent", f"pi_{ZEROS}", account=CONNECT, amount=2000, status="requires_payment_method"
    )
    asyncio.run(handle(_queued(gateway, "payment_intent.payment_failed.connect")))
    calls = stripe_api.calls()
    assert [c.method for c in calls] == ["GET", "POST"]
    assert all(c.headers.get("stripe-account") == CONNECT for c in calls)
    assert stripe_api.get("payment_intent", f"pi_{ZEROS}", account=CONNECT)["metadata"]["gateway_summary"]  # type: ignore[index]


def test_dispute_alert_names_the_reason_and_the_evidence_deadline(
    stripe_api: StripeFake, gateway: Ingress
) -> None:
    stripe_api.seed(
        "dispute", "dp_" + ZEROS, amount=100, reason="fraudulent", evidence_details={"due_by": 1649116799}
    )
    result = asyncio.run(handle(_queued(gateway, "charge.dispute.created")))
    assert "Dispute reason: fraudulent" in result["reply"]
    assert "Evidence due by: 2022-04-04 23:59 UTC" in result["reply"]
    assert f"https://dashboard.stripe.com/test/disputes/dp_{ZEROS}" in result["reply"]


def test_a_long_summary_is_cut_to_stripes_metadata_limit(
    stripe_api: StripeFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_AGENT", "tests.e2e.agents:verbose")
    stripe_api.seed("charge", f"ch_{ZEROS}")
    asyncio.run(handle(_queued(gateway, "charge.failed")))
    summary = stripe_api.get("charge", f"ch_{ZEROS}")["metadata"]["gateway_summary"]  # type: ignore[index]
    assert len(summary) == 500 and summary.startswith("Summary word") and summary.endswith("…")


def test_a_missing_object_is_not_annotated_and_the_run_still_succeeds(
    stripe_api: StripeFake, gateway: Ingress
) -> None:
    result = asyncio.run(handle(_queued(gateway, "charge.failed")))
    assert result["status"] == "succeeded" and "Your card was declined." in result["reply"]
    assert stripe_api.calls("POST") == []


def test_thin_event_reads_the_event_and_its_related_object(stripe_api: StripeFake, gateway: Ingress) -> None:
    """(The fake has no billing meters, so the related object here is a charge.)"""
    stripe_api.seed("charge", "ch_related", account="acct_123", amount=5000, currency="eur")
    related = {"id": "ch_related", "type": "charge", "url": "/v1/charges/ch_related"}
    stripe_api.seed_thin_event(
        "v1.billing.meter.error_report_triggered", "evt_234", account="acct_123", related_object=related
    )
    result = asyncio.run(handle(_queued(gateway, "v1.billing.meter.error_report_triggered")))
    assert "Amount: €50.00" in result["reply"]
    assert [c.path for c in stripe_api.calls()] == [
        "/v2/core/events/evt_234",
        *["/v1/charges/ch_related"] * 2,
    ]
    charge = stripe_api.get("charge", "ch_related", account="acct_123") or {}
    assert charge["metadata"]["gateway_delivery"] == "evt_234"


def test_a_thin_event_of_an_organization_reads_and_writes_in_its_context(
    stripe_api: StripeFake, gateway: Ingress
) -> None:
    """``acct_org/acct_1`` is a Stripe-Context path; as a Stripe-Account it would be refused."""
    context = "acct_org/acct_1"
    stripe_api.seed("charge", "ch_related", account=context, amount=700, currency="usd")
    related = {"id": "ch_related", "type": "charge", "url": "/v1/charges/ch_related"}
    stripe_api.seed_thin_event(
        "v1.billing.meter.error_report_triggered", "evt_234", account=context, related_object=related
    )
    rec = recording("stripe", "v1.billing.meter.error_report_triggered")
    result = asyncio.run(handle(_queued(gateway, rec.name, with_json(rec.body, context=context))))
    assert "Amount: $7.00" in result["reply"]
    assert all(c.headers.get("stripe-context") == context for c in stripe_api.calls())
    assert not any("stripe-account" in c.headers for c in stripe_api.calls())
    assert (stripe_api.get("charge", "ch_related", account=context) or {})["metadata"]["gateway_summary"]


def test_an_object_whose_metadata_is_full_is_left_alone_and_the_run_says_why(
    stripe_api: StripeFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    stripe_api.seed("charge", f"ch_{ZEROS}", metadata={f"note_{n}": "x" for n in range(49)})
    result = asyncio.run(handle(_queued(gateway, "charge.failed")))
    assert result["status"] == "succeeded" and stripe_api.calls("POST") == []
    record = runs.get_run(redis_client, f"stripe-{CHARGE_EVENT}")
    assert record is not None and "49+ metadata keys" in record["undelivered"]


def test_an_invoice_event_in_the_pinned_versions_shape_is_read_and_annotated(
    stripe_api: StripeFake, gateway: Ingress
) -> None:
    rec = recording("stripe", "invoice.payment_failed.endive")
    invoice = json.loads(rec.body)["data"]["object"]
    stripe_api.seed(
        "invoice", invoice["id"], **{k: v for k, v in invoice.items() if k not in ("id", "object")}
    )
    envelope = _queued(gateway, "invoice.payment_failed.endive")
    assert envelope["payload"]["data"]["object"]["parent"]["subscription_details"]["subscription"]
    result = asyncio.run(handle(envelope))
    assert "Customer: jenny.rosen@example.com (`cus_TdQ4pW8nK2vX7a`)" in result["reply"]
    assert "Amount: $20.00" in result["reply"] and "Status: open" in result["reply"]
    assert [c.headers["stripe-version"] for c in stripe_api.calls()] == ["2026-10-28.endive"] * 2
    assert stripe_api.get("invoice", invoice["id"])["metadata"]["gateway_delivery"] == envelope["delivery_id"]  # type: ignore[index]


def test_results_are_announced_in_the_stripe_slack_channel_once(
    stripe_api: StripeFake, gateway: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    stripe_api.seed("charge", f"ch_{ZEROS}")
    with SlackFake() as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
        monkeypatch.setenv("SLACK_API_URL", slack.base_url)
        monkeypatch.setenv("STRIPE_SLACK_CHANNEL", "C0PAY")
        envelope = _queued(gateway, "charge.failed")
        asyncio.run(handle(envelope))
        asyncio.run(handle(envelope))
        (announcement,) = slack.messages("C0PAY")
    assert "*Stripe charge.failed*" in announcement["text"]


def test_updates_that_only_touched_our_metadata_are_ignored(stripe_api: StripeFake, gateway: Ingress) -> None:
    rec = recording("stripe", "customer.subscription.updated")
    data = {"previous_attributes": {"metadata": {"gateway_summary": "old"}}}
    body = with_json(rec.body, data=data)
    result = asyncio.run(handle(_queued(gateway, "customer.subscription.updated", body)))
    assert result == {"status": "ignored"} and stripe_api.calls() == []
