"""slack-sdk against the fake Slack API: error translation and the in-place retry policy."""

from __future__ import annotations

import asyncio
import time

import pytest

from handlers.config import WorkerSettings
from handlers.errors import PermanentError, TransientError
from handlers.retry import RetryPolicy
from handlers.slack.client import build_client, call
from tests.fakes import SlackFake

FAST = RetryPolicy(max_retries=3, base=0.01, cap=0.05)


def _settings(**environ: str) -> WorkerSettings:
    return WorkerSettings.from_environ(environ)


def test_slack_429_with_retry_after_is_retried_in_place_and_posts_once() -> None:
    with SlackFake() as slack:
        client = build_client(_settings(SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.base_url).slack)
        slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "0"})
        response = asyncio.run(call(client.chat_postMessage, channel="C1", text="hello", policy=FAST))
        assert response["ok"] is True
        assert [c.status for c in slack.calls("POST", "/chat.postMessage")] == [429, 200]
        assert [m["text"] for m in slack.messages("C1")] == ["hello"]


def test_slack_auth_error_is_permanent_and_not_retried() -> None:
    with SlackFake() as slack:
        client = build_client(_settings(SLACK_BOT_TOKEN="xoxb-wrong", SLACK_API_URL=slack.base_url).slack)
        with pytest.raises(PermanentError, match="invalid_auth|not_authed"):
            asyncio.run(call(client.chat_postMessage, channel="C1", text="x", policy=FAST))
        assert len(slack.calls("POST", "/chat.postMessage")) == 1


def test_unreachable_api_is_transient() -> None:
    slack = SlackFake().start()
    url = slack.base_url
    slack.stop()
    client = build_client(_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_API_URL=url).slack)
    with pytest.raises(TransientError, match="network"):
        asyncio.run(call(client.auth_test, policy=FAST))


def test_a_retry_that_would_end_after_the_deadline_is_not_attempted() -> None:
    with SlackFake() as slack:
        client = build_client(_settings(SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.base_url).slack)
        slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "30"})
        policy = RetryPolicy(max_retries=3, base=0.01, cap=60)
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            asyncio.run(
                call(client.chat_postMessage, channel="C1", text="x", policy=policy, deadline=time.time() + 5)
            )
        assert caught.value.retry_after == 30 and time.monotonic() - started < 5


def test_a_missing_token_is_a_permanent_error_naming_the_setting() -> None:
    with pytest.raises(PermanentError, match="SLACK_BOT_TOKEN"):
        build_client(_settings().slack)
