"""Slack end to end: signed delivery → app → Redis → worker process → slack-sdk → fake Slack, once."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingSlackFake
from tests.e2e.support import Ingress, kill_once_held, recording, with_json
from tests.fakes.slack_rules import rendered
from tests.handlers.support import FAST, WorkerProcess, job_status, wait_until

pytestmark = pytest.mark.timeout(120)

CHANNEL, THREAD = MENTION_CHANNEL, MENTION_THREAD
JOB = "slack-Ev0001AM0001"
RETRY_FAST = ["--retry-base", "0.2", "--retry-cap", "1"]
SCRIPTED = "tests.agents:scripted"


def _worker(
    redis_url: str, slack: HoldingSlackFake, *args: str, agent: str = "triage", stream: str = "off"
) -> WorkerProcess:
    # The placeholder path (SLACK_STREAM=off) unless asked; the streamed path's crashes and
    # reruns: tests/e2e/test_slack_stream_e2e.py.
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url, "SLACK_STREAM": stream}
    return WorkerProcess(redis_url, *FAST, *RETRY_FAST, *args, agent=agent, env=env)


def _answers(slack: HoldingSlackFake) -> list[dict[str, Any]]:
    return [m for m in slack.thread(CHANNEL, THREAD) if m.get("bot_id")]


def _deliver_mention(gateway: Ingress, times: int = 1, *, script: dict[str, Any] | None = None) -> None:
    """The recorded mention; ``script`` (for tests.agents:scripted) is added to its body."""
    rec = recording("slack", "app_mention")
    body = rec.body if script is None else with_json(rec.body, test=script)
    assert [gateway.post_recording(rec, body=body) for _ in range(times)] == [200] * times


def _finished(connection: redis.Redis) -> bool:
    return job_status(connection, JOB) == "finished"


@pytest.mark.parametrize("stream", ["off", "on"])
def test_a_mention_sent_five_times_is_answered_once(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress, stream: str
) -> None:
    _deliver_mention(gateway, times=5)
    with _worker(redis_url, slack, "--burst", stream=stream) as worker:
        assert worker.wait(timeout=60) == 0
    assert _finished(redis_client)
    (answer,) = _answers(slack)
    shown = rendered(answer["text"])
    assert "I understood: Slack app_mention by <@U0001>" in shown.display
    assert shown.mentions == (), "the echo of the user's words mentions nobody"
    posted = {name: len(slack.calls("POST", f"/{name}")) for name in ("chat.postMessage", "chat.startStream")}
    # Off: one placeholder, edited into the answer; on: one stream, started and stopped.
    assert posted == ({"chat.postMessage": 1, "chat.startStream": 0} if stream == "off" else
                      {"chat.postMessage": 0, "chat.startStream": 1})  # fmt: skip


def test_worker_killed_between_the_post_and_the_marker(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """The placeholder landed but its ts was never stored: the rerun finds it by its metadata."""
    slack.hold("POST", "/chat.postMessage", seconds=10)
    _deliver_mention(gateway)
    kill_once_held(_worker(redis_url, slack), slack.held)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=30)
    (answer,) = _answers(slack)
    assert "I understood" in answer["text"]
    assert len(slack.calls("POST", "/chat.postMessage")) == 1
    assert slack.calls("GET", "/conversations.replies") or slack.calls("POST", "/conversations.replies")


def test_a_rerun_finds_its_placeholder_past_the_first_page_of_a_busy_thread(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """250 replies came in after the delivery: the search pages through them to the placeholder."""
    for n in range(1, 251):
        slack.seed_message(CHANNEL, f"chatter {n}", ts=f"{gateway.now}.{n:06d}", thread_ts=THREAD)
    slack.hold("POST", "/chat.postMessage", seconds=10)
    _deliver_mention(gateway)
    kill_once_held(_worker(redis_url, slack), slack.held)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=30)
    (answer,) = _answers(slack)
    assert "I understood" in answer["text"]
    assert len(slack.calls("POST", "/chat.postMessage")) == 1
    assert len(slack.calls(path="/conversations.replies")) >= 2


def test_worker_killed_after_the_answer_was_posted(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """Slack applied the final edit; the worker died before recording it: still one answer."""
    slack.hold("POST", "/chat.update", contains="I understood", seconds=10)
    _deliver_mention(gateway)
    kill_once_held(_worker(redis_url, slack), slack.held)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=30)
    (answer,) = _answers(slack)
    assert "I understood" in answer["text"]
    assert len(slack.calls("POST", "/chat.postMessage")) == 1


def test_429_and_500_answers_are_survived(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "1"})
    slack.fail_next("POST", "/chat.postMessage", 500)  # answered by the job's retry
    slack.fail_next("POST", "/chat.update", 500, times=2)  # an edit: retried in place
    _deliver_mention(gateway)
    with _worker(redis_url, slack):
        wait_until(lambda: _finished(redis_client), timeout=40)
    (answer,) = _answers(slack)
    assert "I understood" in answer["text"]
    statuses = [call.status for call in slack.calls("POST", "/chat.postMessage")]
    assert statuses == [429, 500, 200]


def test_a_run_that_fails_for_good_says_so_in_place_of_the_placeholder(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _deliver_mention(gateway, script={"permanent": "the model refused"})
    with _worker(redis_url, slack, "--burst", agent=SCRIPTED) as worker:
        assert worker.wait(timeout=60) == 0
    assert job_status(redis_client, JOB) == "failed"
    (note,) = _answers(slack)
    assert note["text"].startswith(":x: Sorry, this failed") and JOB in note["text"]


def test_a_failure_that_is_retried_never_shows_the_failure_note(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _deliver_mention(gateway, script={"transient": 1})
    with _worker(redis_url, slack, "--burst", agent=SCRIPTED) as worker:
        assert worker.wait(timeout=60) == 0
    assert _finished(redis_client)
    (answer,) = _answers(slack)
    assert answer["text"].startswith("done ")
    edits = [call.body.get("text", "") for call in slack.calls("POST", "/chat.update")]
    assert edits and not any("Sorry, this failed" in text for text in edits)
