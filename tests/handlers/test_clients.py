"""SDK clients against the fake platform APIs: error translation and the in-place retry policy."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import Settings
from handlers.clients import call, github_client, slack_client, stripe_client, translate
from handlers.errors import PermanentError, TransientError
from handlers.retry import RetryPolicy
from tests.fakes import GitHubFake, SlackFake, StripeFake

FAST = RetryPolicy(max_retries=3, base=0.01, cap=0.05)


def _settings(**environ: str) -> Settings:
    return Settings.from_environ(environ)


def test_slack_429_with_retry_after_is_retried_in_place_and_posts_once() -> None:
    with SlackFake() as slack:
        client = slack_client(_settings(SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.base_url))
        slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "0"})
        response = asyncio.run(call(client.chat_postMessage, channel="C1", text="hello", policy=FAST))
        assert response["ok"] is True
        assert [c.status for c in slack.calls("POST", "/chat.postMessage")] == [429, 200]
        assert [m["text"] for m in slack.messages("C1")] == ["hello"]


def test_slack_auth_error_is_permanent_and_not_retried() -> None:
    with SlackFake() as slack:
        client = slack_client(_settings(SLACK_BOT_TOKEN="xoxb-wrong", SLACK_API_URL=slack.base_url))
        with pytest.raises(PermanentError, match="invalid_auth|not_authed"):
            asyncio.run(call(client.chat_postMessage, channel="C1", text="x", policy=FAST))
        assert len(slack.calls("POST", "/chat.postMessage")) == 1


def test_missing_tokens_are_permanent_errors_naming_the_setting() -> None:
    with pytest.raises(PermanentError, match="SLACK_BOT_TOKEN"):
        slack_client(_settings())
    with pytest.raises(PermanentError, match="STRIPE_API_KEY"):
        stripe_client(_settings())


def test_github_500s_then_success_is_retried_and_404_is_permanent() -> None:
    with GitHubFake() as gh:
        gh.seed_issue("octo/repo", 3, title="Crash on start")
        client = github_client(_settings(GITHUB_API_URL=gh.base_url), gh.tokens[0])
        gh.fail_next("GET", "/repos/octo/repo", 500, times=2)
        repo = asyncio.run(call(client.get_repo, "octo/repo", policy=FAST))
        assert repo.full_name == "octo/repo"
        with pytest.raises(PermanentError, match="404"):
            asyncio.run(call(repo.get_issue, 99, policy=FAST))


def test_github_gives_up_after_the_policy_cap_as_a_transient_error() -> None:
    with GitHubFake() as gh:
        client = github_client(_settings(GITHUB_API_URL=gh.base_url), gh.tokens[0])
        gh.fail_next("GET", "/repos/octo/repo", 502, times=10)
        with pytest.raises(TransientError, match="502"):
            asyncio.run(call(client.get_repo, "octo/repo", policy=FAST))
        assert len(gh.calls("GET", "/repos/octo/repo")) == FAST.max_retries + 1


def test_stripe_500_and_429_are_transient_and_retried() -> None:
    with StripeFake() as fake:
        fake.seed("payment_intent", "pi_1")
        client = stripe_client(_settings(STRIPE_API_KEY=fake.api_key, STRIPE_API_BASE=fake.base_url))
        fake.fail_next("GET", "/v1/payment_intents/pi_1", 500)
        fake.fail_next("GET", "/v1/payment_intents/pi_1", 429)
        intent = asyncio.run(call(client.v1.payment_intents.retrieve, "pi_1", policy=FAST))
        assert intent.id == "pi_1"
        assert [c.status for c in fake.calls("GET", "/v1/payment_intents/pi_1")] == [500, 429, 200]


def test_stripe_missing_object_is_permanent() -> None:
    with StripeFake() as fake:
        client = stripe_client(_settings(STRIPE_API_KEY=fake.api_key, STRIPE_API_BASE=fake.base_url))
        with pytest.raises(PermanentError, match="InvalidRequestError"):
            asyncio.run(call(client.v1.customers.retrieve, "cus_missing", policy=FAST))


def test_unreachable_api_is_transient() -> None:
    slack = SlackFake().start()
    url = slack.base_url
    slack.stop()
    client = slack_client(_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_API_URL=url))
    with pytest.raises(TransientError, match="network"):
        asyncio.run(call(client.auth_test, policy=FAST))


def test_a_retry_that_would_end_after_the_deadline_is_not_attempted() -> None:
    with SlackFake() as slack:
        client = slack_client(_settings(SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.base_url))
        slack.fail_next("POST", "/chat.postMessage", 429, headers={"Retry-After": "30"})
        policy = RetryPolicy(max_retries=3, base=0.01, cap=60)
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            asyncio.run(
                call(client.chat_postMessage, channel="C1", text="x", policy=policy, deadline=time.time() + 5)
            )
        assert caught.value.retry_after == 30 and time.monotonic() - started < 5


def test_unknown_exceptions_become_permanent_errors() -> None:
    assert isinstance(translate(ValueError("bug")), PermanentError)
    assert isinstance(translate(ConnectionResetError()), TransientError)
