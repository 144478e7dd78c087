"""stripe-python against the fake Stripe API: error translation and the in-place retry policy."""

from __future__ import annotations

import asyncio

import pytest

from handlers.config import WorkerSettings
from handlers.errors import PermanentError
from handlers.retry import RetryPolicy
from handlers.stripe.client import API_VERSION, build_client, call
from tests.fakes import StripeFake

FAST = RetryPolicy(max_retries=3, base=0.01, cap=0.05)


def _settings(**environ: str) -> WorkerSettings:
    return WorkerSettings.from_environ(environ)


def test_stripe_500_and_429_are_transient_and_retried() -> None:
    with StripeFake() as fake:
        fake.seed("payment_intent", "pi_1")
        client = build_client(_settings(STRIPE_API_KEY=fake.api_key, STRIPE_API_BASE=fake.base_url).stripe)
        fake.fail_next("GET", "/v1/payment_intents/pi_1", 500)
        fake.fail_next("GET", "/v1/payment_intents/pi_1", 429)
        intent = asyncio.run(call(client.v1.payment_intents.retrieve, "pi_1", policy=FAST))
        assert intent.id == "pi_1"
        assert [c.status for c in fake.calls("GET", "/v1/payment_intents/pi_1")] == [500, 429, 200]


def test_stripe_missing_object_is_permanent() -> None:
    with StripeFake() as fake:
        client = build_client(_settings(STRIPE_API_KEY=fake.api_key, STRIPE_API_BASE=fake.base_url).stripe)
        with pytest.raises(PermanentError, match="InvalidRequestError"):
            asyncio.run(call(client.v1.customers.retrieve, "cus_missing", policy=FAST))


def test_a_missing_key_is_a_permanent_error_naming_the_setting() -> None:
    with pytest.raises(PermanentError, match="STRIPE_API_KEY"):
        build_client(_settings().stripe)


def test_every_request_says_the_pinned_api_version() -> None:
    with StripeFake() as fake:
        fake.seed("payment_intent", "pi_1")
        client = build_client(_settings(STRIPE_API_KEY=fake.api_key, STRIPE_API_BASE=fake.base_url).stripe)
        asyncio.run(call(client.v1.payment_intents.retrieve, "pi_1", policy=FAST))
        asyncio.run(call(client.raw_request, "post", "/v1/payment_intents/pi_1", metadata={"a": "1"}))
        assert API_VERSION == "2026-10-28.endive"
        assert [c.headers["stripe-version"] for c in fake.calls()] == [API_VERSION, API_VERSION]
