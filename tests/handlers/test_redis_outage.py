"""A Redis outage while deliveries flow and runs are in flight loses nothing and answers nothing twice.

A private ``redis-server`` with an append-only file (synced on every write, so every
acknowledged delivery survives) is SIGKILLed while the real ingress acknowledges Slack mentions
and two real worker processes run them, then started again on the same port. Every delivery the
ingress answered 200 must end with exactly one answer in its thread of the fake Slack, and the
workers must do it on their own: neither is restarted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from gateway.runs import read_events
from handlers.runtime.scripts import CLAIM
from handlers.state import keys, runs
from tests.e2e.support import Ingress, ingress, recording
from tests.fakes import SlackFake
from tests.handlers.support import (
    FAST,
    QUEUE,
    WorkerProcess,
    enqueue,
    job_status,
    slack_envelope,
    wait_until,
)
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(240)

# The load is spread over workspaces and channels, as a busy gateway's is: one workspace's
# chat.update tier (50 a minute) would otherwise pace the runs for minutes, which is the rate
# budget's business (tests/handlers/slack/test_budget.py), not this test's. The fake's own
# limits are raised for the same reason: its one bot token counts as one workspace.
SPREAD = 40
GENEROUS = {
    name: 100_000
    for name in ("chat.postMessage", "chat.update", "conversations.replies")
    + ("chat.startStream", "chat.appendStream", "chat.stopStream")  # answers stream (SLACK_STREAM=on)
}
RUN_SECONDS = 1.0  # each run sleeps this long, so many are in flight when Redis dies
# Redis is down from 4 s to 14 s: longer than redis-py's own retries of one call (about 5 s)
# and than the workers' lease (FAST: 1.5 s), so every lease expires during it.
DOWN_AT, UP_AT, STOP_AT = 4.0, 14.0, 18.0
RETRY_FAST = ["--retry-base", "0.2", "--retry-cap", "1"]


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A server of this test's own (the session's must not be stopped), with AOF."""
    server = RedisServer(durable=True).start()
    yield server
    server.cleanup()


def _channel(number: int) -> str:
    return f"C{number % SPREAD:04d}"


def _mention(number: int) -> tuple[bytes, str, str]:
    """A recorded mention made new: its own event id and its own thread; (body, event id, ts)."""
    rec = recording("slack", "app_mention")
    body = json.loads(rec.body)
    event_id, ts = f"EvOUTAGE{number:05d}", f"1795345212.{number:06d}"
    body["event_id"] = event_id
    body["team_id"] = f"T{number % SPREAD:04d}"
    body["event"].update(ts=ts, event_ts=ts, channel=_channel(number))
    body["test"] = {"sleep": RUN_SECONDS}
    return json.dumps(body).encode(), event_id, ts


def _deliver(gateway: Ingress, slack: SlackFake, number: int) -> tuple[str, str] | None:
    """Post mention ``number``; its (event id, thread ts) when the ingress acknowledged it."""
    body, event_id, ts = _mention(number)
    slack.seed_message(_channel(number), "<@U0002> why is the nightly build failing?", ts=ts, user="U0001")
    status = gateway.post("slack", body, recording("slack", "app_mention").headers)
    assert status in (200, 503), status
    return (event_id, ts) if status == 200 else None


def _answers(slack: SlackFake, ts: str) -> list[dict[str, Any]]:
    channel = _channel(int(ts.rsplit(".", 1)[1]))
    return [message for message in slack.thread(channel, ts) if message.get("bot_id")]


def _unanswered(slack: SlackFake, acked: list[tuple[str, str]]) -> list[str]:
    return [
        event_id
        for event_id, ts in acked
        if not any(f"done {event_id}" in answer.get("text", "") for answer in _answers(slack, ts))
    ]


def _explain(connection: redis.Redis, missing: list[str], workers: list[WorkerProcess]) -> str:
    """What Redis knows of the deliveries still unanswered, and the tail of each worker's log."""
    lines = [f"{len(missing)} unanswered"]
    for event_id in missing[:10]:
        job_id = f"slack-{event_id}"
        lines.append(f"{job_id}: {job_status(connection, job_id)} {runs.get_run(connection, job_id)}")
    for worker in workers:
        worker.close()
        lines += [line for line in worker.output().splitlines() if '"level":"info"' not in line][-30:]
    return "\n".join(lines)


def test_a_redis_restart_under_load_leaves_every_acknowledged_delivery_answered_once(
    durable_redis: RedisServer, tmp_path: Path
) -> None:
    acked: list[tuple[str, str]] = []
    with SlackFake(rate_limits=GENEROUS) as slack:
        env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url}
        workers = [
            WorkerProcess(
                durable_redis.url,
                *FAST,
                *RETRY_FAST,
                agent="tests.agents:napping",
                env=env,
                log=tmp_path / f"worker{number}.log",
            )
            for number in range(2)
        ]
        try:
            with ingress(durable_redis.url) as gateway:
                started = time.monotonic()
                number, outage = 0, "before"
                while time.monotonic() - started < STOP_AT and number < 600:
                    elapsed = time.monotonic() - started
                    if outage == "before" and elapsed > DOWN_AT:
                        durable_redis.kill()
                        outage = "during"
                    elif outage == "during" and elapsed > UP_AT:
                        durable_redis.start()
                        outage = "after"
                    if (delivered := _deliver(gateway, slack, number)) is not None:
                        acked.append(delivered)
                    number += 1
                    time.sleep(0.04)
                assert outage == "after"
            try:
                wait_until(lambda: not _unanswered(slack, acked), timeout=90, every=0.5)
            except AssertionError:
                connection = redis.Redis.from_url(durable_redis.url)
                pytest.fail(_explain(connection, _unanswered(slack, acked), workers))
            assert [worker.process.poll() for worker in workers] == [None, None], "a worker died"
        finally:
            for worker in workers:
                worker.close()
        connection = redis.Redis.from_url(durable_redis.url)
        for event_id, ts in acked:
            answers = _answers(slack, ts)
            assert len(answers) == 1, (event_id, answers)
            assert f"done {event_id}" in answers[0]["text"]
            assert job_status(connection, f"slack-{event_id}") == "finished"
        posted = [call.body.get("thread_ts") for call in slack.calls("POST", "/chat.postMessage")]
        assert len(posted) == len(set(posted)), "a placeholder was posted twice in one thread"
        assert len(acked) >= 50, "too little load to show anything"
        connection.close()


def test_a_claim_whose_answer_was_lost_is_released_by_its_own_live_worker(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The claim script ran but its answer never came back: the worker hands the job back itself."""
    with WorkerProcess(redis_url, *FAST, "--name", "forgetful") as worker:
        wait_until(lambda: redis_client.exists(keys.lease("forgetful")))
        queue = Queue(QUEUE, connection=redis_client, serializer=JSONSerializer)
        job = queue.create_job(
            "handlers.slack.handle", args=(slack_envelope("E-lost"),), job_id="slack-E-lost", timeout=660
        )
        job.save()  # queued, but popped: what the claim script leaves behind
        redis_client.sadd(keys.claimed("forgetful"), job.id)
        redis_client.set(keys.held(job.id), "forgetful|a-token-it-never-heard-of")
        wait_until(lambda: job_status(redis_client, job.id) == "finished", timeout=15)
        assert worker.process.poll() is None
    assert not redis_client.sismember(keys.claimed("forgetful"), job.id)
    # The record's note is the finished run's now; the hand-back is in the run's events.
    requeued = [
        event.data
        for event in read_events(redis_client, job.id)
        if event.kind == "status" and event.data.get("status") == "queued"
    ]
    assert any("lost track of its claim" in data.get("note", "") for data in requeued), requeued
    assert (runs.get_run(redis_client, job.id) or {}).get("status") == "succeeded"


def test_the_claim_script_sent_twice_claims_once(redis_url: str, redis_client: redis.Redis) -> None:
    """redis-py resends a script whose answer was lost: the second run sees its own token."""
    job_id = enqueue(redis_client, slack_envelope("E-twice"))
    claim = redis_client.register_script(CLAIM)
    call_keys = [
        f"rq:queue:{QUEUE}",
        f"rq:job:{job_id}",
        keys.held(job_id),
        keys.claimed("w"),
        "lock",
        "wait",
        keys.SESSIONS_WAITING,
    ]
    args = [job_id, "w|token", "1", "0", 1000, "sid", "1", "rq", 60]
    assert claim(keys=call_keys, args=args) == [b"claimed"]
    assert claim(keys=call_keys, args=args) == [b"claimed"]
    assert claim(keys=call_keys, args=[job_id, "v|other", *args[2:]]) == [b"moved"]
