"""Property: no header/body combination makes the app answer 5xx or queue a job."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from tests.support.signing import sign

SECRETS = {"slack": "prop-slack", "github": "prop-github", "stripe": "whsec_prop"}
NOW = int(time.time())

header_names = st.sampled_from(
    [
        "content-type",
        "content-length",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "x-slack-retry-num",
        "x-hub-signature-256",
        "x-hub-signature",
        "x-github-event",
        "x-github-delivery",
        "stripe-signature",
    ]
)
header_values = st.one_of(
    st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "v0=", "sha256=", "t=1,v1=a", "ping"]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    st.integers(-(10**12), 10**12).map(str),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"{}", b"[]", b"null", b'{"type":"event_callback"}', b"payload=%7B%7D", b"ssl_check=1"]),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4).map(lambda d: repr(d).encode()),
)


@pytest.fixture(scope="module")
def app_client(redis_server: object) -> Iterator[tuple[TestClient, redis.Redis]]:
    url = redis_server.url  # type: ignore[attr-defined]
    environ = {
        "REDIS_URL": url,
        "SLACK_SIGNING_SECRET": SECRETS["slack"],
        "GITHUB_WEBHOOK_SECRET": SECRETS["github"],
        "STRIPE_WEBHOOK_SECRET": SECRETS["stripe"],
    }
    with TestClient(create_app(Settings.from_environ(environ), clock=lambda: NOW)) as client:
        yield client, redis.Redis.from_url(url)


requests = {
    "platform": st.sampled_from(["slack", "github", "stripe", "gitlab"]),
    "headers": st.dictionaries(header_names, header_values, max_size=6),
    "body": bodies,
}
examples = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _post(client: TestClient, platform: str, headers: dict[str, str], body: bytes) -> int:
    headers.pop("content-length", None)  # a lying Content-Length is the HTTP client's concern, not ours
    return client.post(f"/webhooks/{platform}", content=body, headers=headers).status_code


def _queued(redis_client: redis.Redis) -> int:
    return int(redis_client.llen("rq:queue:gateway")) + len(redis_client.keys("gateway:claim:*"))


@examples
@given(**requests)
def test_unsigned_or_forged_requests_never_5xx_and_never_queue(
    app_client: tuple[TestClient, redis.Redis], platform: str, headers: dict[str, str], body: bytes
) -> None:
    client, redis_client = app_client
    status = _post(client, platform, headers, body)
    assert status < 500
    assert _queued(redis_client) == 0


@examples
@given(**requests)
def test_correctly_signed_random_requests_never_5xx_and_queue_only_with_a_200(
    app_client: tuple[TestClient, redis.Redis], platform: str, headers: dict[str, str], body: bytes
) -> None:
    client, redis_client = app_client
    redis_client.flushdb()
    if platform in SECRETS:
        headers.update(sign(platform, SECRETS[platform], body, NOW))
    status = _post(client, platform, headers, body)
    assert status in (200, 400, 401, 404, 413)
    if status != 200:
        assert _queued(redis_client) == 0
