"""Cancel and retry through the runs API, end to end: the real app, real worker processes, slack-sdk
against the fake Slack API; and an ``api`` run answered through its record and event stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingSlackFake
from tests.e2e.support import API, Ingress, ingress, recording, with_json
from tests.handlers.support import FAST, WorkerProcess, wait_until

pytestmark = pytest.mark.timeout(120)

CHANNEL, THREAD = MENTION_CHANNEL, MENTION_THREAD
JOB = "slack-Ev0001AM0001"


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url, api=True) as app:
        yield app


def _worker(redis_url: str, slack: HoldingSlackFake) -> WorkerProcess:
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
    return WorkerProcess(redis_url, *FAST, agent="tests.agents:scripted", env=env)


def _mention(gateway: Ingress, script: dict[str, Any]) -> None:
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, test=script)) == 200


def _run(gateway: Ingress, job_id: str = JOB) -> dict[str, Any]:
    record: dict[str, Any] = gateway.client.get(f"/api/runs/{job_id}", headers=API).json()
    return record


def _placeholder(slack: HoldingSlackFake) -> list[dict[str, Any]]:
    return [m for m in slack.thread(CHANNEL, THREAD) if m.get("bot_id")]


def test_cancel_stops_a_running_run_within_two_seconds_and_slack_says_so(
    redis_url: str, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway, {"sleep": 60, "progress": ["reading"]})
    with _worker(redis_url, slack):
        wait_until(lambda: _run(gateway)["status"] == "running" and _placeholder(slack), timeout=30)
        asked = time.monotonic()
        assert gateway.client.post(f"/api/runs/{JOB}/cancel", headers=API).status_code == 202
        wait_until(lambda: _run(gateway)["status"] == "cancelled", timeout=10, every=0.02)
        stopped_after = time.monotonic() - asked
        wait_until(lambda: "Stopped" in str(_placeholder(slack)[0].get("text")), timeout=10)
    assert stopped_after < 2.0
    assert gateway.client.post(f"/api/runs/{JOB}/cancel", headers=API).status_code == 409


def test_retry_reruns_a_failed_run_which_then_answers(
    redis_url: str, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _mention(gateway, {"permanent": "bad credentials", "permanent_attempts": 1})
    with _worker(redis_url, slack):
        wait_until(lambda: _run(gateway)["status"] == "failed", timeout=30)
        assert gateway.client.post(f"/api/runs/{JOB}/retry", headers=API).status_code == 202
        wait_until(lambda: _run(gateway)["status"] == "succeeded", timeout=30)
    record = _run(gateway)
    assert record["attempts"] == 2 and record["reply"].startswith("done Ev0001AM0001")
    assert [m["text"] for m in _placeholder(slack)] == [record["reply"]]
    assert gateway.client.post(f"/api/runs/{JOB}/retry", headers=API).status_code == 409


def test_an_api_run_is_answered_in_its_record_and_its_stream(
    redis_url: str, redis_client: redis.Redis, gateway: Ingress
) -> None:
    started = gateway.client.post(
        "/api/runs",
        json={"text": "hello there", "session_id": "web-7"},
        headers={**API, "Idempotency-Key": "k-7"},
    ).json()
    with WorkerProcess(redis_url, *FAST, "--burst", agent="triage") as worker:
        assert worker.wait(timeout=60) == 0
    record = _run(gateway, started["run_id"])
    assert record["status"] == "succeeded" and "hello there" in record["reply"]
    with gateway.client.stream("GET", f"/api/runs/{started['run_id']}/events", headers=API) as response:
        text = response.read().decode()
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    kinds = [lines[1].removeprefix("event: ") for lines in events]
    assert kinds[-3:] == ["reply", "status", "done"] and '"posted":true' in events[-3][2]
    assert '"status":"succeeded"' in events[-1][2]
