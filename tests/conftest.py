"""Session-wide real Redis; every test starts with it empty."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import RedisServer

# A .env in the checkout (gateway setup writes one) must not reach the commands the tests run;
# tests of the settings file point GATEWAY_ENV_FILE at their own.
os.environ["GATEWAY_ENV_FILE"] = os.devnull


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _flush_redis(request: pytest.FixtureRequest) -> None:
    """Start every test that uses Redis with an empty database."""
    if "redis_server" in request.fixturenames:
        server: RedisServer = request.getfixturevalue("redis_server")
        redis.Redis(port=server.port).flushall()
