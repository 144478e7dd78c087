"""``/health`` shows each platform's last recovery sweep, read from Redis alone."""

from __future__ import annotations

import redis
from starlette.testclient import TestClient

from gateway import keys
from gateway.app import create_app
from gateway.config import Settings
from gateway.recovery import decode


def _app(redis_url: str) -> TestClient:
    environ = {"REDIS_URL": redis_url, "GITHUB_WEBHOOK_SECRET": "s", "STRIPE_WEBHOOK_SECRET": "whsec_s"}
    return TestClient(create_app(Settings.from_environ(environ)))


def test_health_shows_the_last_sweep_of_each_swept_platform(
    redis_url: str, redis_client: redis.Redis
) -> None:
    sweep = {
        "state": "complete",
        "started_at": "2026-11-22T11:00:00+00:00",
        "finished_at": "2026-11-22T11:00:02+00:00",
        "by": "worker-1",
        "found": "3",
        "requeued": "2",
        "errors": "1",
        "error": "GitHub 422: Validation failed",
        "sources": "app",
    }
    redis_client.hset(keys.last_sweep("github"), mapping=sweep)
    with _app(redis_url) as client:
        health = client.get("/health").json()
    assert health["recovery"] == {"github": {**sweep, "found": 3, "requeued": 2, "errors": 1}}


def test_health_lists_no_sweep_for_platforms_never_swept(redis_url: str) -> None:
    with _app(redis_url) as client:
        assert client.get("/health").json()["recovery"] == {}


def test_decode_reads_bytes_and_turns_counts_into_numbers() -> None:
    assert decode({b"found": b"4", b"state": b"running"}) == {"found": 4, "state": "running"}
    assert decode({}) == {}
