"""The ASGI app end to end against a real Redis: statuses, dedupe under concurrency, Redis failures, logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from gateway.app import GatewayApp, create_app
from gateway.config import Settings
from gateway.logs import JSONFormatter
from tests.support.redis_server import RedisServer
from tests.support.signing import github_headers, slack_headers

SECRET = "app-test-slack-secret"
NOW = 1_763_800_000


def _settings(redis_url: str, **extra: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": SECRET, **extra})


def _mention(event_id: str = "Ev0001", text: str = "<@U0BOT> summarize") -> bytes:
    event = {"type": "app_mention", "user": "U1", "text": text, "channel": "C1", "ts": "1.000100"}
    body = {"type": "event_callback", "event_id": event_id, "team_id": "T1", "event": event}
    return json.dumps(body).encode()


def _signed(body: bytes, *, timestamp: int = NOW, **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", **slack_headers(SECRET, body, timestamp), **extra}


def _jobs(redis_url: str) -> list[str]:
    return Queue("gateway", connection=redis.Redis.from_url(redis_url), serializer=JSONSerializer).job_ids


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(redis_url), clock=lambda: NOW)) as test_client:
        yield test_client


def test_genuine_event_is_acknowledged_with_an_empty_200_and_queued(
    client: TestClient, redis_url: str
) -> None:
    response = client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention()))
    assert (response.status_code, response.content) == (200, b"")
    assert _jobs(redis_url) == ["slack-Ev0001"]


def test_claim_lives_at_least_three_days(client: TestClient, redis_client: redis.Redis) -> None:
    client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention()))
    assert redis_client.ttl("gateway:claim:slack-Ev0001") >= 3 * 24 * 3600 - 5


def test_duplicate_is_acknowledged_but_not_queued_again(client: TestClient, redis_url: str) -> None:
    for _ in range(3):
        assert (
            client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention())).status_code == 200
        )
    assert _jobs(redis_url) == ["slack-Ev0001"]


def test_slack_retry_of_a_queued_event_is_deduplicated(client: TestClient, redis_url: str) -> None:
    client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention()))
    retry = _signed(_mention(), **{"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    assert client.post("/webhooks/slack", content=_mention(), headers=retry).status_code == 200
    assert _jobs(redis_url) == ["slack-Ev0001"]


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_or_future_timestamp_is_401_with_a_generic_body(
    client: TestClient, redis_url: str, offset: int
) -> None:
    response = client.post(
        "/webhooks/slack", content=_mention(), headers=_signed(_mention(), timestamp=NOW + offset)
    )
    assert (response.status_code, response.json()) == (401, {"error": "invalid request"})
    assert _jobs(redis_url) == []


def test_wrong_secret_is_401(client: TestClient, redis_url: str) -> None:
    headers = {"content-type": "application/json", **slack_headers("not-the-secret", _mention(), NOW)}
    assert client.post("/webhooks/slack", content=_mention(), headers=headers).status_code == 401
    assert _jobs(redis_url) == []


def test_url_verification_is_answered_only_after_the_signature_check(client: TestClient) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"}).encode()
    assert (
        client.post("/webhooks/slack", content=body, headers={"content-type": "application/json"}).status_code
        == 401
    )
    response = client.post("/webhooks/slack", content=body, headers=_signed(body))
    assert (response.status_code, response.json()) == (200, {"challenge": "abc123"})


def test_malformed_json_after_a_good_signature_is_400_and_says_why(
    client: TestClient, redis_url: str
) -> None:
    body = b'{"type": "event_callback", "event_id": '
    response = client.post("/webhooks/slack", content=body, headers=_signed(body))
    assert response.status_code == 400
    assert response.json()["error"] == "malformed payload" and "not valid JSON" in response.json()["detail"]
    assert _jobs(redis_url) == []


def test_unknown_platform_is_404(client: TestClient) -> None:
    assert client.post("/webhooks/gitlab", content=b"{}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/webhooks/slack", 405), ("POST", "/webhooks/", 404), ("POST", "/webhooks/slack/x", 404)],
)
def test_other_requests_near_the_webhook_route_are_routed_by_starlette(
    client: TestClient, redis_url: str, method: str, path: str, status: int
) -> None:
    body = _mention()
    assert client.request(method, path, content=body, headers=_signed(body)).status_code == status
    assert _jobs(redis_url) == []


def test_webhook_under_a_root_path_is_verified_and_queued_through_starlette(redis_url: str) -> None:
    app = create_app(_settings(redis_url), clock=lambda: NOW)
    with TestClient(app, root_path="/gateway") as client:
        forged = client.post("/webhooks/slack", content=_mention(), headers=_signed(b"other"))
        genuine = client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention()))
    assert (forged.status_code, genuine.status_code) == (401, 200)
    assert _jobs(redis_url) == ["slack-Ev0001"]


def test_platform_without_a_secret_is_404(client: TestClient) -> None:
    body = b'{"action": "opened"}'
    headers = {"x-github-event": "issues", "x-github-delivery": "d1", **github_headers("x", body)}
    assert client.post("/webhooks/github", content=body, headers=headers).status_code == 404


def test_body_over_the_cap_is_413_whether_declared_or_streamed(redis_url: str) -> None:
    settings = _settings(redis_url, SLACK_MAX_BODY="1000")
    big = _mention(text="x" * 2000)
    with TestClient(create_app(settings, clock=lambda: NOW)) as client:
        assert client.post("/webhooks/slack", content=big, headers=_signed(big)).status_code == 413
        chunks = iter([big[:600], big[600:]])  # no Content-Length: sent chunked
        assert client.post("/webhooks/slack", content=chunks, headers=_signed(big)).status_code == 413
        small = _mention()
        assert client.post("/webhooks/slack", content=small, headers=_signed(small)).status_code == 200
    assert _jobs(redis_url) == ["slack-Ev0001"]


def test_health_reports_queue_depth_and_that_no_worker_takes_it(client: TestClient) -> None:
    client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention()))
    health = client.get("/health")
    assert health.status_code == 200, "no worker is a problem, not a reason to refuse deliveries"
    assert health.json() == {
        "status": "degraded",
        "redis": "ok",
        "queue": "gateway",
        "queued": 1,
        "oldest_queued_age": 0.0,  # the app's clock stands before the job was queued
        "running": 0,
        "retrying": 0,
        "failed": 0,
        "workers": {"alive": 0, "last_heartbeat": None, "last_heartbeat_age": None},
        "platforms": ["slack"],
        "recovery": {},
        "problems": ["no worker is alive: start `gateway worker` (deliveries wait in the queue)"],
    }


def test_redis_stopped_is_503_with_nothing_claimed_and_the_retry_is_queued() -> None:
    server = RedisServer().start()
    try:
        with TestClient(create_app(_settings(server.url), clock=lambda: NOW)) as client:
            server.stop()
            response = client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention()))
            assert response.status_code == 503
            assert client.get("/health").status_code == 503
            server.start()
            assert redis.Redis.from_url(server.url).keys("*") == [], "nothing may stay claimed"
            assert (
                client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention())).status_code
                == 200
            )
            assert _jobs(server.url) == ["slack-Ev0001"]
    finally:
        server.cleanup()


def test_redis_refusing_writes_is_503_and_leaves_no_claim(
    client: TestClient, redis_client: redis.Redis
) -> None:
    redis_client.config_set("maxmemory", "1")  # every write now fails with OOM
    try:
        assert (
            client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention())).status_code == 503
        )
    finally:
        redis_client.config_set("maxmemory", "0")
    assert redis_client.exists("gateway:claim:slack-Ev0001", "rq:job:slack-Ev0001") == 0
    assert client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention())).status_code == 200
    assert redis_client.exists("gateway:claim:slack-Ev0001", "rq:job:slack-Ev0001") == 2


@asynccontextmanager
async def _running(app: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def _post_copies(client: httpx.AsyncClient, body: bytes, copies: int) -> list[int]:
    responses = await asyncio.gather(
        *(client.post("/webhooks/slack", content=body, headers=_signed(body)) for _ in range(copies))
    )
    return [response.status_code for response in responses]


def test_fifty_simultaneous_copies_make_one_job(redis_url: str) -> None:
    async def scenario() -> list[int]:
        async with _running(create_app(_settings(redis_url), clock=lambda: NOW)) as client:
            return await _post_copies(client, _mention(), 50)

    assert asyncio.run(scenario()) == [200] * 50
    assert _jobs(redis_url) == ["slack-Ev0001"]


def test_copies_racing_through_two_gateway_instances_make_one_job(redis_url: str) -> None:
    async def scenario() -> list[int]:
        app_a = create_app(_settings(redis_url), clock=lambda: NOW)
        app_b = create_app(_settings(redis_url), clock=lambda: NOW)
        async with _running(app_a) as a, _running(app_b) as b:
            results = await asyncio.gather(*(_post_copies(c, _mention("Ev0042"), 25) for c in (a, b)))
        return results[0] + results[1]

    assert asyncio.run(scenario()) == [200] * 50
    assert _jobs(redis_url) == ["slack-Ev0042"]


def test_distinct_concurrent_deliveries_are_all_queued(redis_url: str) -> None:
    async def scenario() -> list[int]:
        async with _running(create_app(_settings(redis_url), clock=lambda: NOW)) as client:
            bodies = [_mention(f"Ev{i:04d}") for i in range(300)]
            sends = (client.post("/webhooks/slack", content=b, headers=_signed(b)) for b in bodies)
            return [r.status_code for r in await asyncio.gather(*sends)]

    assert asyncio.run(scenario()) == [200] * 300
    assert sorted(_jobs(redis_url)) == [f"slack-Ev{i:04d}" for i in range(300)]


def _delivery_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JSONFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "gateway.delivery"]


def test_one_json_log_line_per_delivery_without_secrets(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    headers = _signed(_mention(), **{"x-slack-retry-num": "2", "x-slack-retry-reason": "http_timeout"})
    client.post("/webhooks/slack", content=_mention(), headers=headers)
    client.post("/webhooks/slack", content=_mention(), headers=_signed(_mention(), timestamp=NOW - 999))
    first, second = _delivery_lines(caplog)
    assert {k: first[k] for k in ("platform", "event", "delivery_id", "outcome", "status", "retry_num")} == {
        "platform": "slack",
        "event": "app_mention",
        "delivery_id": "Ev0001",
        "outcome": "queued",
        "status": 200,
        "retry_num": "2",
    }
    assert isinstance(first["duration_ms"], float)
    assert (second["outcome"], second["status"]) == ("rejected", 401) and "SLACK_SIGNING_SECRET" in str(
        second["reason"]
    )
    everything = caplog.text + json.dumps([first, second])
    assert SECRET not in everything
    assert headers["X-Slack-Signature"].removeprefix("v0=") not in everything
