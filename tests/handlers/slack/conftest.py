"""The Slack handler tests' shared parts: one fake Slack per module, the worker's environment
pointing at it, and the real ingress in front of Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.support import Ingress, ingress
from tests.fakes import SlackFake


@pytest.fixture(scope="module")
def slack_api() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def slack(slack_api: SlackFake, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> SlackFake:
    """The fake, emptied, and the settings ``handlers.slack.handle`` reads (the default
    ``SLACK_STREAM=on``), with the scripted test agent."""
    slack_api.reset()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack_api.token)
    monkeypatch.setenv("SLACK_API_URL", slack_api.base_url)
    monkeypatch.setenv("GATEWAY_AGENT", "tests.agents:scripted")
    return slack_api


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url) as app:
        yield app
