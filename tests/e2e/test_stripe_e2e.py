"""Stripe end to end: signed event → app → Redis → worker process → stripe-python → fake Stripe (+ Slack)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.e2e.support import Ingress, ingress, recording
from tests.fakes import SlackFake, StripeFake
from tests.handlers.support import FAST, WorkerProcess, job_status, wait_until

pytestmark = pytest.mark.timeout(120)

CHARGE = "ch_" + "0" * 24
JOB = str(recording("stripe", "charge.failed").expect["job_id"])  # type: ignore[index]


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url) as app:
        yield app


@pytest.fixture
def apis() -> Iterator[tuple[StripeFake, SlackFake]]:
    with StripeFake() as stripe_api, SlackFake() as slack:
        stripe_api.seed("charge", CHARGE, amount=2000, status="failed", customer="cus_1")
        yield stripe_api, slack


def _worker(redis_url: str, stripe_api: StripeFake, slack: SlackFake, *args: str) -> WorkerProcess:
    env = {
        "STRIPE_API_KEY": stripe_api.api_key,
        "STRIPE_API_BASE": stripe_api.base_url,
        "STRIPE_SLACK_CHANNEL": "C0PAY",
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
    }
    return WorkerProcess(redis_url, *FAST, "--retry-base", "0.2", *args, agent="triage", env=env)


def test_an_event_sent_five_times_is_written_back_and_announced_once(
    redis_url: str, redis_client: redis.Redis, apis: tuple[StripeFake, SlackFake], gateway: Ingress
) -> None:
    stripe_api, slack = apis
    rec = recording("stripe", "charge.failed")
    assert [gateway.post_recording(rec) for _ in range(5)] == [200] * 5
    with _worker(redis_url, stripe_api, slack, "--burst") as worker:
        assert worker.wait(timeout=60) == 0
    assert job_status(redis_client, JOB) == "finished"
    assert len(stripe_api.calls("POST", f"/v1/charges/{CHARGE}")) == 1
    assert stripe_api.get("charge", CHARGE)["metadata"]["gateway_delivery"] == rec.expect["delivery_id"]  # type: ignore[index]
    (announcement,) = slack.messages("C0PAY")
    assert "Customer: cus_1" in announcement["text"]


def test_429_and_500_from_stripe_and_slack_are_survived(
    redis_url: str, redis_client: redis.Redis, apis: tuple[StripeFake, SlackFake], gateway: Ingress
) -> None:
    stripe_api, slack = apis
    stripe_api.fail_next("POST", f"/v1/charges/{CHARGE}", 429, headers={"Retry-After": "1"})
    stripe_api.fail_next("POST", f"/v1/charges/{CHARGE}", 500)
    slack.fail_next("POST", "/chat.postMessage", 500)
    assert gateway.post_recording(recording("stripe", "charge.failed")) == 200
    with _worker(redis_url, stripe_api, slack):
        wait_until(lambda: job_status(redis_client, JOB) == "finished", timeout=40)
    writes = stripe_api.calls("POST", f"/v1/charges/{CHARGE}")
    assert [w.status for w in writes][:3] == [429, 500, 200]
    assert len({w.headers["idempotency-key"] for w in writes}) == 1, "one key for every try of one write"
    assert len(slack.messages("C0PAY")) == 1
