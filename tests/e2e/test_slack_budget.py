"""Many runs in one workspace, in two worker processes, stay within Slack's tiers: progress gives way,
every answer lands, a 429 pauses the method for every worker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.fakes import SlackFake
from tests.handlers.support import FAST, WorkerProcess, enqueue, job_status, slack_envelope, wait_until

pytestmark = pytest.mark.timeout(150)

RUNS = 14
STEPS = [f"step {n}" for n in range(12)]


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:  # chat.update at Tier 3: 50 a minute per workspace
        yield fake


def _workers(redis_url: str, slack: SlackFake, *, stream: str = "off") -> list[WorkerProcess]:
    # The placeholder's chat.update edits unless asked (SLACK_STREAM=on: streams, Tier 2 starts).
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url, "SLACK_STREAM": stream}
    return [WorkerProcess(redis_url, *FAST, "--concurrency", "10", env=env) for _ in range(2)]


def _enqueue_runs(connection: redis.Redis, count: int, script: dict[str, object]) -> list[str]:
    envelopes = [
        slack_envelope(f"EvBUDGET{n:03d}", thread=f"1795345{n:03d}.0001", channel=f"C{n % 4}", test=script)
        for n in range(count)
    ]
    return [enqueue(connection, envelope) for envelope in envelopes]


def _all_finished(connection: redis.Redis, jobs: list[str]) -> bool:
    return all(job_status(connection, job) == "finished" for job in jobs)


def test_concurrent_runs_share_the_workspaces_budget_and_every_answer_lands(
    redis_url: str, redis_client: redis.Redis, slack: SlackFake
) -> None:
    jobs = _enqueue_runs(redis_client, RUNS, {"progress": STEPS, "progress_every": 0.4})
    workers = _workers(redis_url, slack)
    try:
        wait_until(lambda: _all_finished(redis_client, jobs), timeout=120)
    finally:
        for worker in workers:
            worker.close()
    calls = slack.calls("POST", "/chat.*")
    assert [c for c in calls if c.status == 429] == [], "no call went past Slack's tier"
    finals = [c for c in slack.calls("POST", "/chat.update") if c.body["text"].startswith("done")]
    assert len(finals) == RUNS
    for n in range(RUNS):
        (answer,) = [m for m in slack.messages(f"C{n % 4}") if m.get("thread_ts") == f"1795345{n:03d}.0001"]
        assert answer["text"].startswith(f"done EvBUDGET{n:03d}")


def test_streamed_runs_past_the_start_tier_take_the_placeholder_and_every_answer_lands(
    redis_url: str, redis_client: redis.Redis, slack: SlackFake
) -> None:
    """chat.startStream is Tier 2 (20 a minute): more runs than that budget gets take the
    placeholder, and no call goes past a tier."""
    jobs = _enqueue_runs(
        redis_client, RUNS, {"progress": STEPS[:4], "progress_every": 0.4, "stream": ["do", "ne"]}
    )
    workers = _workers(redis_url, slack, stream="on")
    try:
        wait_until(lambda: _all_finished(redis_client, jobs), timeout=120)
    finally:
        for worker in workers:
            worker.close()
    calls = slack.calls("POST", "/chat.*") + slack.calls("POST", "/assistant.*")
    assert [c for c in calls if c.status == 429] == [], "no call went past Slack's tier"
    started = [c for c in slack.calls("POST", "/chat.startStream") if c.status == 200]
    placeholders = slack.calls("POST", "/chat.postMessage")
    assert started and placeholders and len(started) + len(placeholders) == RUNS
    for n in range(RUNS):
        (answer,) = [m for m in slack.messages(f"C{n % 4}") if m.get("thread_ts") == f"1795345{n:03d}.0001"]
        assert answer["text"].startswith("done")


def test_a_429_stops_every_worker_editing_in_that_workspace_until_retry_after(
    redis_url: str, redis_client: redis.Redis, slack: SlackFake
) -> None:
    slack.fail_next("POST", "/chat.update", 429, headers={"Retry-After": "3"})
    jobs = _enqueue_runs(redis_client, 6, {"progress": STEPS, "progress_every": 0.3})
    workers = _workers(redis_url, slack)
    try:
        wait_until(lambda: _all_finished(redis_client, jobs), timeout=90)
    finally:
        for worker in workers:
            worker.close()
    updates = slack.calls("POST", "/chat.update")
    limited = next(c for c in updates if c.status == 429)
    # Edits already on the wire when the 429 came back may land just after it; then none for 3 s.
    during = [c for c in updates if limited.at + 0.5 < c.at < limited.at + 2.9]
    assert during == [], "no worker edited during the pause"
    assert sum(c.body["text"].startswith("done") and c.status == 200 for c in updates) == 6
    assert time.time() - limited.at >= 3
