"""Alerts: one per cause per 10 minutes, posted once across workers, what to run next in each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from gateway import keys
from gateway.alerts import Alert, SignatureWatch, raise_alert
from gateway.app import create_app
from gateway.config import Settings
from handlers.alerts import FailedWatch, run_failed
from handlers.config import WorkerSettings
from handlers.services import Services
from handlers.slack import alerts as slack_alerts
from handlers.slack.alerts import AlertPoster
from tests.e2e.holding import HoldingSlackFake
from tests.handlers.support import FAST, WorkerProcess, enqueue, job_status, slack_envelope, wait_until
from tests.support.redis_server import RedisServer
from tests.support.signing import slack_headers

ALERTS_CHANNEL = "C0ALERTS"


@pytest.fixture
def slack() -> Iterator[HoldingSlackFake]:
    with HoldingSlackFake() as fake:
        yield fake


def _services(redis_url: str, slack: HoldingSlackFake) -> Services:
    settings = WorkerSettings.from_environ(
        {
            "REDIS_URL": redis_url,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.base_url,
            "GATEWAY_ALERT_SLACK_CHANNEL": ALERTS_CHANNEL,
        }
    )
    return Services(settings)


def _posted(slack: HoldingSlackFake) -> list[str]:
    return [message["text"] for message in slack.messages(ALERTS_CHANNEL)]


def _alert(cause: str = "test_cause", text: str = "something broke") -> Alert:
    return Alert(cause=cause, text=text, next="`gateway check`")


def test_an_alert_is_raised_once_per_cause_in_ten_minutes(redis_client: redis.Redis) -> None:
    assert raise_alert(redis_client, _alert("a")) is True
    assert raise_alert(redis_client, _alert("a", "again")) is False
    assert raise_alert(redis_client, _alert("b")) is True
    assert redis_client.xlen(keys.ALERTS) == 2
    assert 590 < redis_client.ttl(keys.alert_gate("a")) <= 600


def test_the_poster_posts_each_alert_once_with_what_to_do_next(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake
) -> None:
    raise_alert(redis_client, _alert(text="the <!channel> broke & burned"))
    first = AlertPoster(_services(redis_url, slack), ALERTS_CHANNEL, consumer="w1")
    second = AlertPoster(_services(redis_url, slack), ALERTS_CHANNEL, consumer="w2")
    for poster in (first, second, first, second):
        asyncio.run(poster())
    (text,) = _posted(slack)
    assert "the &lt;!channel&gt; broke &amp; burned" in text, "what an alert quotes pings nobody"
    assert "Next: `gateway check`" in text


def test_an_alert_a_dead_poster_left_pending_is_posted_by_another(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    raise_alert(redis_client, _alert())
    slack.fail_next("POST", "/chat.postMessage", 500)
    dying = AlertPoster(_services(redis_url, slack), ALERTS_CHANNEL, consumer="dying")
    asyncio.run(dying())  # read it, failed to post: it stays pending under "dying"
    assert _posted(slack) == []
    monkeypatch.setattr(slack_alerts, "CLAIM_IDLE_MS", 100)
    time.sleep(0.2)
    asyncio.run(AlertPoster(_services(redis_url, slack), ALERTS_CHANNEL, consumer="other")())
    assert len(_posted(slack)) == 1
    assert redis_client.xpending(keys.ALERTS, slack_alerts.GROUP)["pending"] == 0


def test_an_alert_slack_refuses_for_good_is_dropped_not_retried_forever(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake
) -> None:
    raise_alert(redis_client, _alert())
    slack.fail_next("POST", "/chat.postMessage", 200, body={"ok": False, "error": "channel_not_found"})
    poster = AlertPoster(_services(redis_url, slack), ALERTS_CHANNEL, consumer="w1")
    asyncio.run(poster())
    asyncio.run(poster())
    assert len(slack.calls("POST", "/chat.postMessage")) == 1
    assert redis_client.xpending(keys.ALERTS, slack_alerts.GROUP)["pending"] == 0


def test_an_alert_raised_long_before_any_poster_ran_is_not_posted_late(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake
) -> None:
    two_hours_ago = int((time.time() - 7200) * 1000)
    redis_client.xadd(keys.ALERTS, {"cause": "old", "text": "stale", "next": "-"}, id=f"{two_hours_ago}-0")
    asyncio.run(AlertPoster(_services(redis_url, slack), ALERTS_CHANNEL, consumer="w1")())
    assert _posted(slack) == []


def test_the_failed_registry_past_its_threshold_raises_one_alert(redis_client: redis.Redis) -> None:
    watch = FailedWatch(redis_client, "gateway", threshold=3)
    for n in range(2):
        redis_client.zadd("rq:failed:gateway", {f"job{n}": n})
    asyncio.run(watch())
    assert redis_client.xlen(keys.ALERTS) == 0
    redis_client.zadd("rq:failed:gateway", {"job2": 2})
    asyncio.run(watch())
    asyncio.run(watch())
    ((_, fields),) = redis_client.xrange(keys.ALERTS)
    assert fields[b"cause"] == b"failed_piling_up"
    assert b"gateway failed list" in fields[b"next"]


def test_a_run_failed_for_good_names_the_commands_that_retry_it(redis_client: redis.Redis) -> None:
    assert run_failed(redis_client, "slack-Ev1", "slack", "Slack refused the call: invalid_auth")
    ((_, fields),) = redis_client.xrange(keys.ALERTS)
    assert b"invalid_auth" in fields[b"text"]
    assert b"gateway failed retry slack-Ev1" in fields[b"next"]


def test_a_worker_posts_the_alert_of_a_run_that_failed_for_good(
    redis_url: str, redis_client: redis.Redis, slack: HoldingSlackFake
) -> None:
    job_id = enqueue(redis_client, slack_envelope("EvFAIL", test={"permanent": "the agent gave up"}))
    env = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "GATEWAY_ALERT_SLACK_CHANNEL": ALERTS_CHANNEL,
    }
    with WorkerProcess(redis_url, *FAST, env=env):
        wait_until(lambda: job_status(redis_client, job_id) == "failed")
        (text,) = wait_until(lambda: _posted(slack))
    assert job_id in text and "the agent gave up" in text
    assert f"gateway failed retry {job_id}" in text


def test_an_alert_channel_without_a_bot_token_is_a_settings_error(redis_url: str) -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        WorkerSettings.from_environ({"REDIS_URL": redis_url, "GATEWAY_ALERT_SLACK_CHANNEL": "C1"})


def test_many_refused_signatures_in_five_minutes_raise_one_alert() -> None:
    watch = SignatureWatch(threshold=3, window=300)
    assert watch.refused("github", 0) is None
    assert watch.refused("github", 200) is None
    assert watch.refused("slack", 250) is None, "counted per platform"
    assert watch.refused("github", 400) is None, "the first one fell out of the window"
    alert = watch.refused("github", 401)
    assert alert is not None and alert.cause == "signatures:github"
    assert "gateway check" in alert.next


def test_the_web_app_raises_the_signature_alert_after_a_rotation_went_wrong(redis_url: str) -> None:
    settings = Settings.from_environ({"REDIS_URL": redis_url, "SLACK_SIGNING_SECRET": "new-secret"})
    connection = redis.Redis.from_url(redis_url)
    body = b'{"type":"event_callback","event_id":"Ev1","team_id":"T1","event":{"type":"app_mention"}}'
    with TestClient(create_app(settings)) as client:
        for _ in range(20):
            headers = {
                "content-type": "application/json",
                **slack_headers("old-secret", body, int(time.time())),
            }
            assert client.post("/webhooks/slack", content=body, headers=headers).status_code == 401
    ((_, fields),) = connection.xrange(keys.ALERTS)
    assert fields[b"cause"] == b"signatures:slack"
    assert b"old-secret" not in fields[b"text"] + fields[b"next"] and b"new-secret" not in fields[b"text"]


def test_the_web_app_says_redis_was_unavailable_once_it_answers_again() -> None:
    server = RedisServer().start()
    settings = Settings.from_environ({"REDIS_URL": server.url, "SLACK_SIGNING_SECRET": "s"})
    body = b'{"type":"event_callback","event_id":"Ev1","team_id":"T1","event":{"type":"app_mention"}}'
    try:
        with TestClient(create_app(settings)) as client:

            def post() -> int:
                headers = {"content-type": "application/json", **slack_headers("s", body, int(time.time()))}
                return client.post("/webhooks/slack", content=body, headers=headers).status_code

            server.stop()
            assert post() == 503
            server.start()
            assert post() == 200
        fields = wait_until(lambda: redis.Redis.from_url(server.url).xrange(keys.ALERTS))[0][1]
        assert fields[b"cause"] == b"redis_unavailable"
        assert b"gateway recover" in fields[b"next"]
    finally:
        server.cleanup()


def test_a_worker_that_rode_out_a_redis_outage_raises_one_alert_after_it() -> None:
    server = RedisServer(durable=True).start()
    try:
        connection = redis.Redis.from_url(server.url)
        with WorkerProcess(server.url, *FAST, "--name", "survivor"):
            wait_until(lambda: connection.exists(keys.lease("survivor")))
            server.kill()
            time.sleep(2.0)  # heartbeats every 0.3 s fail meanwhile
            server.start()
            fields = wait_until(lambda: connection.xrange(keys.ALERTS), timeout=30)[0][1]
        assert fields[b"cause"] == b"redis_unavailable"
        assert b"Redis was unavailable to a worker" in fields[b"text"]
        assert connection.xlen(keys.ALERTS) == 1
    finally:
        server.cleanup()
