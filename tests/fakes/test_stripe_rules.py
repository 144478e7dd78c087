"""The fake Stripe refuses and shapes what Stripe does — driven by the real stripe-python."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from tests.fakes import StripeFake
from tests.fakes.stripe_rules import is_known_version

ITEMS = {"object": "list", "data": [{"id": "si_1", "current_period_start": 100, "current_period_end": 200}]}
PARENT = {"type": "subscription_details", "subscription_details": {"subscription": "sub_1", "metadata": {}}}


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with StripeFake() as server:
        yield server


def _client(fake: StripeFake, version: str | None = "2026-10-28.endive") -> stripe.StripeClient:
    options: dict[str, Any] = {"stripe_version": version} if version else {}
    return stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url}, **options)


@pytest.mark.parametrize(
    ("version", "known"),
    [
        ("2020-08-27", True),
        ("2025-03-31.basil", True),
        ("2026-10-28.endive", True),
        ("2025-03-31.acacia", False),  # the wrong major for its date
        ("2024-10-28", False),  # named majors since 2024-09-30
        ("2031-01-01.zinnia", False),
        ("latest", False),
    ],
)
def test_api_versions_are_known_by_date_and_major(version: str, known: bool) -> None:
    assert is_known_version(version) is known


def test_an_unknown_stripe_version_is_refused(fake: StripeFake) -> None:
    fake.seed("customer", "cus_1")
    with pytest.raises(stripe.InvalidRequestError, match="Invalid Stripe API version"):
        _client(fake, "2025-03-31.acacia").v1.customers.retrieve("cus_1")


def test_objects_are_shaped_by_the_requests_version(fake: StripeFake) -> None:
    fake.seed("subscription", "sub_1", items=ITEMS)
    fake.seed("invoice", "in_1", parent=PARENT)
    fake.seed("charge", "ch_1", invoice="in_1")
    new, old = _client(fake), _client(fake, "2024-06-20")
    sub, old_sub = new.v1.subscriptions.retrieve("sub_1"), old.v1.subscriptions.retrieve("sub_1")
    assert "current_period_end" not in sub and sub["items"]["data"][0]["current_period_end"] == 200
    assert (old_sub["current_period_start"], old_sub["current_period_end"]) == (100, 200)
    invoice, old_invoice = new.v1.invoices.retrieve("in_1"), old.v1.invoices.retrieve("in_1")
    assert (
        "subscription" not in invoice and invoice["parent"]["subscription_details"]["subscription"] == "sub_1"
    )
    assert old_invoice["subscription"] == "sub_1" and "parent" not in old_invoice
    assert (
        "invoice" not in new.v1.charges.retrieve("ch_1")
        and old.v1.charges.retrieve("ch_1")["invoice"] == "in_1"
    )


def test_without_a_version_the_accounts_default_applies(fake: StripeFake) -> None:
    """The account here defaults to an acacia version, so an unpinned client gets the old shape."""
    fake.seed("subscription", "sub_1", items=ITEMS)
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    sub = httpx.get(f"{fake.base_url}/v1/subscriptions/sub_1", headers=headers).json()
    assert sub["current_period_end"] == 200


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{n}": "v" for n in range(51)}, "up to 50 keys, but you've set 51"),
        ({"k" * 41: "v"}, "must be a string under 40 characters"),
        ({"note": "v" * 501}, "must be a string under 500 characters"),
    ],
)
def test_metadata_past_stripes_limits_is_refused(
    fake: StripeFake, metadata: dict[str, str], message: str
) -> None:
    fake.seed("charge", "ch_1")
    with pytest.raises(stripe.InvalidRequestError, match=message) as raised:
        _client(fake).v1.charges.update("ch_1", params={"metadata": metadata})
    assert raised.value.param == "metadata"
    assert fake.get("charge", "ch_1")["metadata"] == {}  # type: ignore[index]


def test_the_50_keys_count_what_the_object_already_holds(fake: StripeFake) -> None:
    fake.seed("charge", "ch_1", metadata={f"k{n}": "v" for n in range(49)})
    client = _client(fake)
    client.v1.charges.update("ch_1", params={"metadata": {"k0": "", "a": "1", "b": "2"}})  # 48 + 2
    with pytest.raises(stripe.InvalidRequestError, match="you've set 51"):
        client.v1.charges.update("ch_1", params={"metadata": {"c": "3"}})


def test_stripe_account_takes_one_account_and_stripe_context_a_path(fake: StripeFake) -> None:
    fake.seed("charge", "ch_1", account="acct_org/acct_1")
    client = _client(fake)
    with pytest.raises(stripe.InvalidRequestError, match="Stripe-Account"):
        client.v1.charges.retrieve("ch_1", options={"stripe_account": "acct_org/acct_1"})
    charge = client.v1.charges.retrieve("ch_1", options={"stripe_context": "acct_org/acct_1"})
    assert charge.id == "ch_1"


def test_v2_events_are_scoped_by_stripe_context_only(fake: StripeFake) -> None:
    fake.seed_thin_event("v1.billing.meter.error_report_triggered", "evt_1", account="acct_1")
    client = _client(fake)
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("get", "/v2/core/events/evt_1", stripe_account="acct_1")
    found = client.raw_request("get", "/v2/core/events/evt_1", stripe_context="acct_1")
    assert found.data["context"] == "acct_1"
