"""The Stripe recovery sweep against the fake Stripe: undelivered events queued once, as the ingress would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from gateway.queue import to_job_id
from handlers.config import WorkerSettings
from handlers.recover import Report, sweep
from handlers.services import Services
from handlers.state import keys, runs
from handlers.stripe.recover import SWEEP
from tests.fakes import StripeFake
from tests.fakes.server import Reply, Request

THIN = "v1.billing.meter.error_report_triggered"


class _FlakyStripe(StripeFake):
    """Answers 500 to every page of ``/v1/events`` after the first while ``flaky`` is set."""

    flaky = False

    def _list_events(self, request: Request) -> Reply:
        if self.flaky and "starting_after" in request.query:
            return Reply(500, {"error": {"type": "api_error", "message": "An unknown error occurred"}})
        return super()._list_events(request)


@pytest.fixture
def stripe_api() -> Iterator[_FlakyStripe]:
    with _FlakyStripe() as fake:
        yield fake


def _services(redis_url: str, fake: StripeFake, **extra: str) -> Services:
    environ = {
        "REDIS_URL": redis_url,
        "STRIPE_WEBHOOK_SECRET": "whsec_s",
        "STRIPE_API_KEY": fake.api_key,
        "STRIPE_API_BASE": fake.base_url,
        **extra,
    }
    return Services(WorkerSettings.from_environ(environ))


def _sweep(services: Services, **options: Any) -> Report:
    return asyncio.run(sweep(services, SWEEP, owner="test", **options))


def _failed_event(fake: StripeFake, **fields: Any) -> dict[str, Any]:
    invoice = {"id": "in_1", "object": "invoice", "customer": "cus_1", "status": "open"}
    defaults = {"type": "invoice.payment_failed", "data": {"object": invoice}, "pending_webhooks": 1}
    return fake.seed("event", **(defaults | fields))


def _queued(connection: redis.Redis) -> list[str]:
    return [job_id.decode() for job_id in connection.lrange("rq:queue:gateway", 0, -1)]


def test_an_undelivered_event_is_queued_as_the_ingress_would_and_recorded(
    redis_url: str, redis_client: redis.Redis, stripe_api: StripeFake
) -> None:
    event = _failed_event(stripe_api)
    stripe_api.seed("event", type="invoice.paid", pending_webhooks=0)  # delivered: not listed
    report = _sweep(_services(redis_url, stripe_api))
    assert (report.found, report.requeued, report.complete) == (1, 1, True)
    job_id = to_job_id("stripe", event["id"])
    assert _queued(redis_client) == [job_id]
    assert redis_client.exists(keys.claim(job_id)), "claimed like any delivery: a late webhook is a duplicate"
    job = Queue("gateway", connection=redis_client, serializer=JSONSerializer).fetch_job(job_id)
    assert job is not None and job.func_name == "handlers.stripe.handle"
    envelope = job.args[0]
    assert (envelope["platform"], envelope["delivery_id"], envelope["event"]) == (
        "stripe",
        event["id"],
        event["type"],
    )
    assert envelope["payload"] == event and envelope["meta"]["kind"] == "snapshot"
    record = runs.get_run(redis_client, job_id)
    assert record is not None and (record["outcome"], record["source"]) == ("recovered", "stripe:v1 events")
    listed = stripe_api.calls("GET", "/v1/events")[0]
    assert listed.query["delivery_success"] == "false" and "created[gte]" in listed.query


def test_claimed_events_are_not_queued_again(
    redis_url: str, redis_client: redis.Redis, stripe_api: StripeFake
) -> None:
    event = _failed_event(stripe_api)  # another endpoint of the account failed; we got it
    redis_client.set(keys.claim(to_job_id("stripe", event["id"])), "1")
    report = _sweep(_services(redis_url, stripe_api))
    assert (report.found, report.requeued) == (0, 0)
    assert _queued(redis_client) == []


def test_every_page_is_walked_and_an_interrupted_walk_resumes(
    redis_url: str, redis_client: redis.Redis, stripe_api: _FlakyStripe
) -> None:
    now = int(time.time())
    events = [_failed_event(stripe_api, created=now - 600 - i) for i in range(250)]
    stripe_api.flaky = True
    services = _services(redis_url, stripe_api)
    first = _sweep(services)
    assert (first.complete, first.requeued) == (False, 100)
    cursor = redis_client.hget(keys.recover_state("stripe"), "v1 events|cursor")
    assert cursor == events[99]["id"].encode(), "the next sweep starts after the last event handled"
    stripe_api.flaky = False
    second = _sweep(services)
    assert (second.complete, second.found, second.requeued) == (True, 150, 150)
    assert sorted(_queued(redis_client)) == sorted(to_job_id("stripe", e["id"]) for e in events)
    assert redis_client.hget(keys.recover_state("stripe"), "v1 events|cursor") is None


def test_thin_events_of_the_configured_types_are_queued(
    redis_url: str, redis_client: redis.Redis, stripe_api: StripeFake
) -> None:
    related = {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"}
    wanted = stripe_api.seed_thin_event(THIN, related_object=related)
    stripe_api.seed_thin_event("v1.other.thing")
    old = datetime.fromtimestamp(time.time() - 3 * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    stripe_api.seed_thin_event(THIN, created=old)  # before the first sweep's day
    report = _sweep(_services(redis_url, stripe_api, STRIPE_THIN_EVENT_TYPES=THIN))
    assert report.complete and [s.name for s in report.sources] == ["v1 events", "v2 events"]
    assert _queued(redis_client) == [to_job_id("stripe", wanted["id"])]
    listed = stripe_api.calls("GET", "/v2/core/events")[0]
    assert listed.query["types[0]"] == THIN and listed.query["created[gte]"].endswith("Z")


def test_thin_events_are_not_listed_without_their_types(redis_url: str, stripe_api: StripeFake) -> None:
    stripe_api.seed_thin_event(THIN)
    report = _sweep(_services(redis_url, stripe_api))
    assert [s.name for s in report.sources] == ["v1 events"]
    assert stripe_api.calls("GET", "/v2/core/events") == []


def test_a_rate_limited_listing_is_retried(
    redis_url: str, redis_client: redis.Redis, stripe_api: StripeFake
) -> None:
    _failed_event(stripe_api)
    stripe_api.fail_next("GET", "/v1/events", 429)
    report = _sweep(_services(redis_url, stripe_api))
    assert (report.complete, report.requeued) == (True, 1)
    assert [c.status for c in stripe_api.calls("GET", "/v1/events")] == [429, 200]


def test_stripe_cannot_be_swept_without_its_api_key(redis_url: str) -> None:
    environ = {"REDIS_URL": redis_url, "STRIPE_WEBHOOK_SECRET": "whsec_s"}
    report = _sweep(Services(WorkerSettings.from_environ(environ)))
    assert report.skipped is not None and "STRIPE_API_KEY" in report.skipped


def test_a_sweep_that_found_missed_events_raises_an_alert_and_counts_them(
    redis_url: str, redis_client: redis.Redis, stripe_api: StripeFake
) -> None:
    from gateway.keys import ALERTS
    from handlers.metrics import REGISTRY

    def recovered() -> float:
        return REGISTRY.get_sample_value("gateway_recovered_deliveries_total", {"platform": "stripe"}) or 0.0

    before = recovered()
    _sweep(_services(redis_url, stripe_api))  # nothing missed: no alert
    assert redis_client.xlen(ALERTS) == 0
    _failed_event(stripe_api)
    _failed_event(stripe_api, data={"object": {"id": "in_2", "object": "invoice", "customer": "cus_2"}})
    _sweep(_services(redis_url, stripe_api))
    assert recovered() - before == 2
    ((_, fields),) = redis_client.xrange(ALERTS)
    assert fields[b"cause"] == b"recovered:stripe"
    assert b"found 2 missed deliveries (2 queued now)" in fields[b"text"]
    assert b"gateway runs list --platform stripe" in fields[b"next"]
