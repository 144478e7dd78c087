"""The GitHub recovery sweep against the fake GitHub: what it redelivers, what it leaves, how it resumes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from gateway.queue import to_job_id
from handlers.config import WorkerSettings
from handlers.github.recover import SWEEP, rate_limit_wait
from handlers.recover import Report, sweep
from handlers.services import Services
from handlers.state import keys, runs
from tests.e2e.support import APP_ID, APP_KEY, APP_PEM
from tests.fakes import GitHubFake

HOOK = "repos/acme/api/hooks/12"


@pytest.fixture
def app_fake() -> Iterator[GitHubFake]:
    with GitHubFake(app_id=APP_ID, app_public_key=APP_KEY.public_key()) as fake:
        fake.add_hook("app")
        yield fake


@pytest.fixture
def hook_fake() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        fake.add_hook(HOOK)
        yield fake


def _services(redis_url: str, fake: GitHubFake, **extra: str) -> Services:
    environ = {"REDIS_URL": redis_url, "GITHUB_WEBHOOK_SECRET": "s", "GITHUB_API_URL": fake.base_url, **extra}
    if fake.app_id:
        environ |= {"GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY": APP_PEM}
    else:
        environ |= {"GITHUB_TOKEN": fake.token, "GITHUB_RECOVER_HOOKS": "acme/api:12"}
    return Services(WorkerSettings.from_environ(environ))


def _sweep(services: Services, **options: Any) -> Report:
    return asyncio.run(sweep(services, SWEEP, owner="test", **options))


def _claim(connection: redis.Redis, guid: str) -> None:
    connection.set(keys.claim(to_job_id("github", guid)), "1")


def _redelivered(fake: GitHubFake, hook: str = "app") -> list[str]:
    fake.wait_for_redeliveries()
    return [attempt["guid"] for attempt in fake.redeliveries(hook)]


def test_a_failed_unclaimed_delivery_is_redelivered_once_and_recorded(
    redis_url: str, redis_client: redis.Redis, app_fake: GitHubFake
) -> None:
    failed = app_fake.seed_delivery("app", event="issues", status_code=503, action="opened")
    report = _sweep(_services(redis_url, app_fake))
    assert (report.found, report.requeued, report.errors, report.complete) == (1, 1, [], True)
    assert _redelivered(app_fake) == [failed["guid"]]
    record = runs.get_run(redis_client, to_job_id("github", failed["guid"]))
    assert record is not None and (record["outcome"], record["source"]) == ("recovered", "github:app")
    assert record["status"] == "queued", "redelivery asked for, not arrived yet"
    last = redis_client.hgetall(keys.last_sweep("github"))
    assert last[b"state"] == b"complete" and last[b"found"] == b"1" and last[b"requeued"] == b"1"


def test_claimed_succeeded_and_ping_deliveries_are_left_alone(
    redis_url: str, redis_client: redis.Redis, app_fake: GitHubFake
) -> None:
    late = app_fake.seed_delivery("app", status_code=0, status="timed out")  # we got it; GitHub gave up
    _claim(redis_client, late["guid"])
    app_fake.seed_delivery("app", event="ping", status_code=503)
    retried = app_fake.seed_delivery("app", status_code=502)
    app_fake.seed_delivery("app", guid=retried["guid"], status_code=200, redelivery=True)
    report = _sweep(_services(redis_url, app_fake))
    assert (report.found, report.requeued, report.complete) == (0, 0, True)
    assert _redelivered(app_fake) == []


def test_the_newest_failed_attempt_is_the_one_redelivered(redis_url: str, app_fake: GitHubFake) -> None:
    first = app_fake.seed_delivery("app", status_code=503, delivered_at=time.time() - 120)
    newest = app_fake.seed_delivery("app", guid=first["guid"], status_code=502, redelivery=True)
    _sweep(_services(redis_url, app_fake))
    (again,) = _redelivered(app_fake)
    posted = app_fake.calls("POST", "/app/hook/deliveries/*/attempts")
    assert [c.path for c in posted] == [f"/app/hook/deliveries/{newest['id']}/attempts"]
    assert again == first["guid"]


def test_repository_webhooks_are_swept_with_the_token(
    redis_url: str, redis_client: redis.Redis, hook_fake: GitHubFake
) -> None:
    failed = hook_fake.seed_delivery(HOOK, status_code=500)
    report = _sweep(_services(redis_url, hook_fake))
    assert (report.found, report.requeued) == (1, 1)
    assert _redelivered(hook_fake, HOOK) == [failed["guid"]]
    assert all(
        c.headers["authorization"] == f"Bearer {hook_fake.token}" for c in hook_fake.calls(path="/repos/*")
    )


def test_a_sweep_stopped_by_the_rate_limit_resumes_where_it_stopped(
    redis_url: str, redis_client: redis.Redis, app_fake: GitHubFake
) -> None:
    """250 failed deliveries, three pages; the budget runs out after the first page and its 100
    redeliveries, until a reset too far off to wait for. The next sweep resumes at the second page."""
    now = time.time()
    guids = [app_fake.seed_delivery("app", delivered_at=now - 600 - i)["guid"] for i in range(250)]
    app_fake.limit_requests(101)  # then 403 until a reset an hour away
    services = _services(redis_url, app_fake)
    report = _sweep(services)
    assert (report.complete, report.found, report.requeued) == (False, 100, 100)
    assert "rate limit" in report.errors[0]
    assert redis_client.hget(keys.last_sweep("github"), "state") == b"incomplete"
    cursor = redis_client.hget(keys.recover_state("github"), "app|cursor")
    assert cursor is not None
    refused = app_fake.calls("GET", "/app/hook/deliveries")[-1]
    assert refused.status == 403 and refused.query.get("cursor") == cursor.decode()
    assert len(app_fake.calls("GET", "/app/hook/deliveries")) == 2, "no call made while rate limited"
    app_fake.wait_for_redeliveries()
    app_fake.lift_rate_limit()  # the reset time comes
    second = _sweep(services)
    assert (second.complete, second.found, second.requeued) == (True, 150, 150)
    assert sorted(_redelivered(app_fake)) == sorted(guids), "every failed delivery redelivered exactly once"
    assert redis_client.hget(keys.recover_state("github"), "app|cursor") is None


def test_a_short_rate_limit_is_waited_out(redis_url: str, app_fake: GitHubFake) -> None:
    app_fake.seed_delivery("app", status_code=503)
    app_fake.fail_next("GET", "/app/hook/deliveries", 429, headers={"Retry-After": "1"})
    started = time.monotonic()
    report = _sweep(_services(redis_url, app_fake))
    assert (report.complete, report.requeued) == (True, 1)
    assert time.monotonic() - started >= 1
    assert [c.faulted for c in app_fake.calls("GET", "/app/hook/deliveries")] == [True, False]


def test_two_sweeps_never_run_at_once(
    redis_url: str, redis_client: redis.Redis, app_fake: GitHubFake
) -> None:
    app_fake.seed_delivery("app", status_code=503)
    app_fake.fail_next("GET", "/app/hook/deliveries", 429, headers={"Retry-After": "1"})
    services = _services(redis_url, app_fake)

    async def both() -> list[Report]:
        return list(
            await asyncio.gather(sweep(services, SWEEP, owner="one"), sweep(services, SWEEP, owner="two"))
        )

    reports = asyncio.run(both())
    skipped = [r for r in reports if r.skipped]
    assert len(skipped) == 1 and "another sweep of github is running" in (skipped[0].skipped or "")
    assert sum(r.requeued for r in reports) == 1
    assert redis_client.get(keys.recover_lock("github")) is None, "the lock is released"


def test_a_dry_run_lists_and_changes_nothing(
    redis_url: str, redis_client: redis.Redis, app_fake: GitHubFake
) -> None:
    app_fake.seed_delivery("app", status_code=503)
    seen: list[str] = []
    report = _sweep(_services(redis_url, app_fake), dry_run=True, on_found=lambda m, s, a: seen.append(a))
    assert (report.found, report.requeued, seen) == (1, 0, ["would bring back"])
    assert app_fake.calls("POST") == []
    assert redis_client.exists(keys.recover_state("github"), keys.last_sweep("github")) == 0


def test_since_reaches_further_back_than_the_checkpoint_and_never_past_retention(
    redis_url: str, app_fake: GitHubFake
) -> None:
    now = time.time()
    services = _services(redis_url, app_fake)
    assert _sweep(services).complete  # the checkpoint is now
    old = app_fake.seed_delivery("app", status_code=503, delivered_at=now - 2 * 86400)
    # The fake is not api.github.com: GitHub Enterprise Server keeps deliveries 7 days.
    app_fake.seed_delivery("app", status_code=503, delivered_at=now - 8 * 86400)
    assert _sweep(services).found == 0, "below the checkpoint: not walked again"
    report = _sweep(services, since=10 * 86400)
    assert (report.found, report.requeued) == (1, 1)
    assert _redelivered(app_fake) == [old["guid"]]


def test_a_saved_cursor_github_refuses_is_dropped_for_a_walk_from_the_newest(
    redis_url: str, redis_client: redis.Redis, app_fake: GitHubFake
) -> None:
    failed = app_fake.seed_delivery("app", status_code=503, delivered_at=time.time() - 7200)
    state = {
        "app|swept_until": str(time.time() - 60),
        "app|cursor": "v1_999999999",
        "app|floor": str(time.time() - 86400),
    }
    redis_client.hset(keys.recover_state("github"), mapping=state)
    report = _sweep(_services(redis_url, app_fake))
    assert (report.complete, report.requeued) == (True, 1)
    assert _redelivered(app_fake) == [failed["guid"]]


def test_a_permanent_redelivery_refusal_is_counted_and_the_sweep_goes_on(
    redis_url: str, app_fake: GitHubFake
) -> None:
    app_fake.seed_delivery("app", status_code=503)
    app_fake.seed_delivery("app", status_code=503)
    app_fake.fail_next("POST", "/app/hook/deliveries/*/attempts", 422)
    report = _sweep(_services(redis_url, app_fake))
    assert (report.found, report.requeued, report.complete) == (2, 1, True)
    assert "422" in report.errors[0]


def test_github_cannot_be_swept_without_the_app_or_named_hooks(redis_url: str, hook_fake: GitHubFake) -> None:
    environ = {"REDIS_URL": redis_url, "GITHUB_WEBHOOK_SECRET": "s", "GITHUB_TOKEN": "t"}
    report = _sweep(Services(WorkerSettings.from_environ(environ)))
    assert report.skipped is not None and "GITHUB_RECOVER_HOOKS" in report.skipped


@pytest.mark.parametrize(
    ("status", "headers", "body", "wait"),
    [
        (429, {"retry-after": "7"}, {}, 7.0),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}, {}, 31.0),
        (403, {}, {"message": "You have exceeded a secondary rate limit."}, 60.0),
        (429, {}, {}, 60.0),
        (403, {"x-ratelimit-remaining": "12"}, {"message": "Resource not accessible by integration"}, None),
        (500, {"retry-after": "3"}, {}, None),
    ],
)
def test_rate_limit_waits_follow_githubs_headers(
    status: int, headers: dict[str, str], body: dict[str, str], wait: float | None
) -> None:
    response = httpx.Response(status, headers=headers, json=body)
    assert rate_limit_wait(response, now=1000.0) == wait
