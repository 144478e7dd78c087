"""Streamed Slack answers end to end, with a real worker killed mid-stream: still one answer."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingSlackFake
from tests.e2e.support import Ingress, kill_once_held, recording, with_json
from tests.handlers.support import FAST, WorkerProcess, job_status, wait_until

pytestmark = pytest.mark.timeout(120)

CHANNEL, THREAD = MENTION_CHANNEL, MENTION_THREAD
JOB = "slack-Ev0001AM0001"
RETRY_FAST = ["--retry-base", "0.2", "--retry-cap", "1"]
SCRIPT = {"stream": ["The nightly ", "build ", "broke in ", "step 3."], "stream_every": 0.5}


def _worker(redis_url: str, slack: HoldingSlackFake) -> WorkerProcess:
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
    return WorkerProcess(redis_url, *FAST, *RETRY_FAST, agent="tests.agents:scripted", env=env)


def _answers(slack: HoldingSlackFake) -> list[dict[str, Any]]:
    return [m for m in slack.thread(CHANNEL, THREAD) if m.get("bot_id")]


def _deliver(gateway: Ingress) -> None:
    rec = recording("slack", "app_mention")
    assert gateway.post_recording(rec, body=with_json(rec.body, test=SCRIPT)) == 200


def _finished(connection: redis.Redis) -> bool:
    return job_status(connection, JOB) == "finished"


def test_a_streamed_mention_is_answered_once_with_feedback(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _deliver(gateway)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=40)
    (answer,) = _answers(slack)
    assert answer["text"] == "The nightly build broke in step 3."
    assert slack.stream(CHANNEL, answer["ts"])["state"] == "stopped"  # type: ignore[index]
    assert any(block["type"] == "context_actions" for block in answer.get("blocks") or [])
    assert len(slack.calls("POST", "/chat.startStream")) == 1 and not slack.calls("POST", "/chat.postMessage")


def test_worker_killed_mid_stream_the_rerun_finishes_the_same_message(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    slack.hold("POST", "/chat.appendStream", seconds=10)
    _deliver(gateway)
    kill_once_held(_worker(redis_url, slack), slack.held)
    (started,) = _answers(slack)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=40)
    (answer,) = _answers(slack)
    assert answer["ts"] == started["ts"] and answer["text"] == "The nightly build broke in step 3."
    assert slack.stream(CHANNEL, answer["ts"])["state"] == "stopped"  # type: ignore[index]
    assert len(slack.calls("POST", "/chat.startStream")) == 1


def test_worker_killed_before_recording_its_stream_the_rerun_adopts_it(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """startStream landed, its ts was never stored: the rerun finds the bot's message without
    metadata in the thread and makes it the answer, never a second one beside it."""
    slack.hold("POST", "/chat.startStream", seconds=10)
    _deliver(gateway)
    kill_once_held(_worker(redis_url, slack), slack.held)
    (started,) = _answers(slack)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=40)
    (answer,) = _answers(slack)
    assert answer["ts"] == started["ts"] and answer["text"] == "The nightly build broke in step 3."
    assert answer["metadata"]["event_payload"] == {"delivery": JOB}
    assert len(slack.calls("POST", "/chat.startStream")) == 1
    assert not slack.calls("POST", "/chat.postMessage")


def test_a_500_on_start_stream_is_answered_by_the_jobs_retry_once(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """A 5xx start may have landed: it is not re-sent in place; the rerun looks, then starts."""
    slack.fail_next("POST", "/chat.startStream", 500)
    _deliver(gateway)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=40)
    (answer,) = _answers(slack)
    assert answer["text"] == "The nightly build broke in step 3."
    assert [call.status for call in slack.calls("POST", "/chat.startStream")] == [500, 200]
    assert slack.calls(path="/conversations.replies"), "the rerun looked for a stream first"
