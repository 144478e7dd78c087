"""``GET /metrics``: what the web app counts, what it reads from Redis, and who may read it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.errors import ConfigError
from tests.support.prometheus import Samples, samples, value
from tests.support.served import served
from tests.support.signing import slack_headers

SECRET = "metrics-slack-secret"
SCRAPER = "scraper-token-1"


def _settings(redis_url: str, **extra: str) -> Settings:
    return Settings.from_environ({"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": SECRET, **extra})


def _mention(event_id: str) -> bytes:
    event = {"type": "app_mention", "user": "U1", "text": "hi", "channel": "C1", "ts": "1.000100"}
    return json.dumps(
        {"type": "event_callback", "event_id": event_id, "team_id": "T1", "event": event}
    ).encode()


def _post(client: TestClient, body: bytes, secret: str = SECRET, path: str = "/webhooks/slack") -> int:
    headers = {"content-type": "application/json", **slack_headers(secret, body, int(time.time()))}
    return client.post(path, content=body, headers=headers).status_code


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(redis_url, GATEWAY_METRICS_TOKEN=SCRAPER))) as test_client:
        yield test_client


def _scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)


def test_deliveries_are_counted_by_platform_and_outcome_and_timed(client: TestClient) -> None:
    before = _scrape(client)
    assert _post(client, _mention("EvM1")) == 200
    assert _post(client, _mention("EvM1")) == 200
    assert _post(client, _mention("EvM2"), secret="rotated-away") == 401
    after = _scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("gateway_deliveries_total", platform="slack", outcome="queued") == 1
    assert grew("gateway_deliveries_total", platform="slack", outcome="duplicate") == 1
    assert grew("gateway_deliveries_total", platform="slack", outcome="bad_signature") == 1
    assert grew("gateway_ack_seconds_count", platform="slack") == 3
    assert grew("gateway_ack_seconds_bucket", platform="slack", le="+Inf") == 3


def test_the_queue_and_the_workers_are_read_from_redis_when_scraped(client: TestClient) -> None:
    assert _post(client, _mention("EvQ1")) == 200
    assert _post(client, _mention("EvQ2")) == 200
    samples = _scrape(client)
    assert value(samples, "gateway_queue_depth") == 2
    assert value(samples, "gateway_queue_oldest_age_seconds") >= 0
    assert value(samples, "gateway_workers_alive") == 0
    assert value(samples, "gateway_redis_up") == 1


def test_a_platform_label_never_comes_from_the_url(client: TestClient) -> None:
    for name in ("evil", "x" * 30, "slack2"):
        assert _post(client, _mention("EvU1"), path=f"/webhooks/{name}") == 404
    samples = _scrape(client)
    platforms = {dict(labels).get("platform") for (_, labels) in samples if dict(labels).get("platform")}
    assert platforms <= {"slack", "github", "stripe", "api", "unknown"}
    assert value(samples, "gateway_deliveries_total", platform="unknown", outcome="unknown_platform") >= 3


def test_redis_down_reads_as_redis_up_0_not_an_error(redis_url: str) -> None:
    from tests.support.redis_server import RedisServer

    server = RedisServer().start()
    try:
        with TestClient(create_app(_settings(server.url, GATEWAY_METRICS="open"))) as client:
            server.stop()
            response = client.get("/metrics")
            assert response.status_code == 200
            assert value(samples(response.text), "gateway_redis_up") == 0
    finally:
        server.cleanup()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong", 401), (f"Basic {SCRAPER}", 401), (f"Bearer {SCRAPER}", 200)],
)
def test_token_mode_asks_for_one_of_the_tokens(
    client: TestClient, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status != 200:
        assert "gateway_" not in response.text


def test_off_answers_404(redis_url: str) -> None:
    with TestClient(create_app(_settings(redis_url, GATEWAY_METRICS="off"))) as client:
        assert client.get("/metrics").status_code == 404


def test_local_mode_answers_loopback_but_not_what_a_proxy_forwarded(redis_url: str) -> None:
    """The default: a real server on 127.0.0.1 answers its own machine, not a proxied request."""
    with served(redis_url, {"SLACK_SIGNING_SECRET": SECRET}) as base:
        local = httpx.get(f"{base}/metrics", timeout=5)
        assert local.status_code == 200
        assert re.search(r"^gateway_queue_depth ", local.text, re.MULTILINE)
        forwarded = httpx.get(f"{base}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
        assert forwarded.status_code == 404
        assert "gateway_" not in forwarded.text


def test_local_mode_refuses_a_peer_that_is_not_loopback(redis_url: str) -> None:
    with TestClient(create_app(_settings(redis_url))) as client:  # its peer is "testclient"
        assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"GATEWAY_METRICS": "token"}, "GATEWAY_METRICS"),
        ({"GATEWAY_METRICS": "local", "GATEWAY_METRICS_TOKEN": "t"}, "GATEWAY_METRICS_TOKEN"),
        ({"GATEWAY_METRICS": "public"}, "GATEWAY_METRICS"),
        ({"GATEWAY_METRICS_TOKEN": "a,,b"}, "GATEWAY_METRICS_TOKEN"),
    ],
)
def test_contradictory_metrics_settings_are_refused(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_environ(environ)


def test_a_token_alone_means_token_mode_and_is_never_shown() -> None:
    settings = Settings.from_environ({"GATEWAY_METRICS_TOKEN": "s3cret-scraper"})
    assert settings.metrics.mode == "token"
    assert "s3cret-scraper" not in repr(settings)
    from gateway.config import redacted

    assert redacted(settings)["GATEWAY_METRICS_TOKEN"] == "<set>"


def test_redis_client_is_untouched_by_a_refused_scrape(client: TestClient, redis_client: redis.Redis) -> None:
    keys_before = set(redis_client.keys("*"))
    assert client.get("/metrics").status_code == 401
    assert set(redis_client.keys("*")) == keys_before
