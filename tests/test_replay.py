"""Every recorded delivery, re-signed and replayed through the real app into a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.recorded import Recording, discover
from tests.support.signing import sign

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDINGS = discover(FIXTURES)
SECRETS = {"slack": "replay-slack-secret", "github": "replay-github-secret", "stripe": "whsec_replay"}
NOW = 1_763_800_000


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    environ = {
        "REDIS_URL": redis_url,
        "SLACK_SIGNING_SECRET": SECRETS["slack"],
        "GITHUB_WEBHOOK_SECRET": SECRETS["github"],
        "STRIPE_WEBHOOK_SECRET": SECRETS["stripe"],
    }
    with TestClient(create_app(Settings.from_environ(environ), clock=lambda: NOW)) as test_client:
        yield test_client


def _post(client: TestClient, recording: Recording, body: bytes | None = None) -> tuple[int, bytes]:
    signature = sign(recording.platform, SECRETS[recording.platform], recording.body, NOW)
    response = client.post(
        f"/webhooks/{recording.platform}",
        content=recording.body if body is None else body,
        headers={**recording.headers, **signature},
    )
    return response.status_code, response.content


def _queue(redis_client: redis.Redis) -> Queue:
    return Queue("gateway", connection=redis_client, serializer=JSONSerializer)


def test_the_corpus_covers_every_platform() -> None:
    counts = {platform: sum(r.platform == platform for r in RECORDINGS) for platform in SECRETS}
    assert counts["slack"] >= 8 and counts["github"] >= 12 and counts["stripe"] >= 10, counts


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda r: f"{r.platform}/{r.name}")
def test_replay_queues_exactly_the_expected_job_once(
    recording: Recording, client: TestClient, redis_client: redis.Redis
) -> None:
    expect = recording.expect
    assert expect is not None, "every fixture states what the gateway must do with it"
    status, content = _post(client, recording)
    assert status == expect["status"]
    queue = _queue(redis_client)
    if expect["job_id"] is None:
        assert queue.count == 0
        if "response" in expect:
            assert json.loads(content) == expect["response"]
        return
    assert queue.job_ids == [expect["job_id"]]
    job = queue.fetch_job(expect["job_id"])
    assert job is not None and job.func_name == f"handlers.{recording.platform}.handle"
    envelope = job.args[0]
    assert (envelope["event"], envelope["action"], envelope["delivery_id"]) == (
        expect["event"],
        expect["action"],
        expect["delivery_id"],
    )
    assert _post(client, recording)[0] == 200
    assert queue.count == 1, "a second replay must not queue again"


@pytest.mark.parametrize(
    "recording", [r for r in RECORDINGS if r.name != "ssl_check"], ids=lambda r: f"{r.platform}/{r.name}"
)
def test_tampered_replay_is_refused_and_queues_nothing(
    recording: Recording, client: TestClient, redis_client: redis.Redis
) -> None:
    tampered = recording.body.replace(b"a", b"b", 1) if b"a" in recording.body else recording.body + b" "
    assert _post(client, recording, body=tampered)[0] == 401
    assert _queue(redis_client).count == 0
    assert not redis_client.keys("gateway:claim:*")
