"""What Redis keeps once a delivery is done: the run record, the claim, and little else.

A recorded Slack mention through the real app and a real worker answering on the fake Slack; then
each key of that delivery is checked for what it still holds and for how long.
"""

from __future__ import annotations

import pytest
import redis

from gateway import keys as gateway_keys
from gateway import runs as gateway_runs
from gateway.app import create_app
from gateway.config import Settings
from gateway.runs import RUN_TTL
from gateway.types import Envelope
from handlers.registry import session_key
from handlers.state import keys, runs, sessions
from tests.e2e.holding import MENTION_CHANNEL, MENTION_THREAD, HoldingSlackFake
from tests.e2e.support import Ingress, recording
from tests.handlers.support import FAST, WorkerProcess, job_status

pytestmark = pytest.mark.timeout(120)

CHANNEL, THREAD = MENTION_CHANNEL, MENTION_THREAD
JOB = "slack-Ev0001AM0001"


def _answer(redis_url: str, slack: HoldingSlackFake, gateway: Ingress, **env: str) -> Envelope:
    """Deliver the recorded mention and let a worker answer it; returns the envelope it ran."""
    assert gateway.post_recording(recording("slack", "app_mention")) == 200
    envelope = gateway.envelope(JOB)
    worker_env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url, **env}
    with WorkerProcess(redis_url, *FAST, "--burst", agent="triage", env=worker_env) as worker:
        assert worker.wait(timeout=60) == 0
    assert job_status(gateway.connection, JOB) == "finished"
    return envelope


def _posts(slack: HoldingSlackFake) -> int:
    methods = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
    return sum(len(slack.calls("POST", f"/{method}")) for method in methods)


def test_a_finished_delivery_keeps_no_result_no_envelope_and_a_bare_reply_marker(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    _answer(redis_url, slack, gateway)
    record = runs.get_run(redis_client, JOB)
    assert record is not None and record["status"] == "succeeded"
    assert "I understood" in record["reply"], "the reply is kept once, in the run record"
    assert redis_client.exists(f"rq:results:{JOB}") == 0, "no RQ Result duplicates the record"
    data = redis_client.hget(f"rq:job:{JOB}", "data") or b""
    assert b"nightly build" not in data, "the envelope is not kept after the run"
    assert 0 < redis_client.ttl(f"rq:job:{JOB}") <= 600
    assert redis_client.hgetall(keys.reply(JOB)) == {b"answered": b"1"}
    assert redis_client.ttl(keys.reply(JOB)) > 2 * 24 * 3600, "it outlives any stray rerun"
    assert redis_client.ttl(gateway_keys.claim(JOB)) > 2 * 24 * 3600, "the claim still dedupes"
    assert RUN_TTL - 60 < redis_client.ttl(gateway_keys.run(JOB)) <= RUN_TTL


def test_a_rerun_after_success_posts_nothing_more(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    """The bare marker is what a stray rerun reads: the job put back by hand runs without posting."""
    _answer(redis_url, slack, gateway)
    posts = _posts(slack)
    assert posts >= 1
    redis_client.delete(f"rq:job:{JOB}", gateway_keys.claim(JOB))
    assert gateway.post_recording(recording("slack", "app_mention")) == 200
    with WorkerProcess(
        redis_url,
        *FAST,
        "--burst",
        agent="triage",
        env={"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.base_url},
    ) as worker:
        assert worker.wait(timeout=60) == 0
    assert job_status(redis_client, JOB) == "finished"
    assert _posts(slack) == posts


def test_retention_settings_bound_run_records_and_session_history(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, gateway: Ingress
) -> None:
    envelope = _answer(
        redis_url, slack, gateway, GATEWAY_RUN_RETENTION="7200", GATEWAY_SESSION_RETENTION="120"
    )
    assert 7000 < redis_client.ttl(gateway_keys.run(JOB)) <= 7200
    assert 7000 < redis_client.ttl(gateway_keys.run_events(JOB)) <= 7200
    key = session_key(envelope)
    assert key is not None
    history = keys.session_history(sessions.session_id(key))
    assert redis_client.llen(history) > 0
    assert 0 < redis_client.ttl(history) <= 120


def test_the_web_app_applies_its_run_retention(redis_url: str, redis_client: redis.Redis) -> None:
    environ = {"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": "s", "GATEWAY_RUN_RETENTION": "3600"}
    try:
        create_app(Settings.from_environ(environ))
        gateway_runs.write(redis_client, "slack-E1", status="queued")
        assert 3500 < redis_client.ttl(gateway_keys.run("slack-E1")) <= 3600
    finally:
        gateway_runs.set_retention(RUN_TTL)


def test_run_retention_below_an_hour_is_refused() -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="GATEWAY_RUN_RETENTION"):
        Settings.from_environ({"GATEWAY_RUN_RETENTION": "60"})
