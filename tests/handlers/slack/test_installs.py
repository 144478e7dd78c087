"""Many workspaces on the worker side: the installing workspace's token, rotation, uninstalls.

Real slack-sdk against the fake Slack API; installations are written as ``/slack/oauth_redirect``
writes them (``gateway.installations``), encrypted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis
from cryptography.fernet import Fernet

from gateway.installations import Cipher, Installation
from gateway.types import Envelope
from handlers.slack import handle
from tests.e2e.support import Ingress, ingress, recording, with_json
from tests.fakes import SlackFake

KEY = Fernet.generate_key().decode()
CIPHER = Cipher((KEY,))


@pytest.fixture(scope="module")
def slack_api() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def slack(slack_api: SlackFake, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> SlackFake:
    slack_api.reset()
    for name, value in {
        "REDIS_URL": redis_url,
        "SLACK_BOT_TOKEN": slack_api.token,  # the single-workspace token, for workspaces not installed
        "SLACK_API_URL": slack_api.base_url,
        "SLACK_CLIENT_ID": slack_api.client_id,
        "SLACK_CLIENT_SECRET": slack_api.client_secret,
        "GATEWAY_ENCRYPTION_KEY": KEY,
        "GATEWAY_AGENT": "tests.agents:scripted",
    }.items():
        monkeypatch.setenv(name, value)
    return slack_api


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Ingress]:
    with ingress(redis_url) as app:
        yield app


def _mention(gateway: Ingress, *, team: str, event_id: str = "Ev0001AM0001") -> Envelope:
    rec = recording("slack", "app_mention")
    body = with_json(
        rec.body, team_id=team, event_id=event_id, authorizations=[{"team_id": team, "is_bot": True}]
    )
    assert gateway.post_recording(rec, body=body) == 200
    return gateway.envelope(f"slack-{event_id}")


def _install(connection: redis.Redis, slack: SlackFake, team: str, **fields: Any) -> Installation:
    token = f"xoxb-{team}-installed"
    slack.tokens = (*slack.tokens, token)
    installation = Installation(
        team_id=team, enterprise_id=None, is_enterprise_install=False, bot_token=token, **fields
    )
    connection.hset(installation.key, mapping=installation.to_fields(CIPHER))  # type: ignore[arg-type]
    return installation


def _tokens_used(slack: SlackFake) -> set[str]:
    return {call.headers["authorization"].removeprefix("Bearer ") for call in slack.calls(path="/chat.*")}


def test_a_reply_uses_the_installing_workspaces_token(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    installed = _install(redis_client, slack, "T0OTHER")
    assert asyncio.run(handle(_mention(gateway, team="T0OTHER")))["status"] == "succeeded"
    assert _tokens_used(slack) == {installed.bot_token}


def test_a_workspace_without_an_installation_uses_slack_bot_token(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    _install(redis_client, slack, "T0OTHER")
    asyncio.run(handle(_mention(gateway, team="T0SINGLE")))
    assert _tokens_used(slack) == {slack.token}


def test_an_org_wide_install_answers_for_its_teams(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    token = "xoxb-org-installed"
    slack.tokens = (*slack.tokens, token)
    org = Installation(team_id=None, enterprise_id="E0ORG", is_enterprise_install=True, bot_token=token)
    redis_client.hset(org.key, mapping=org.to_fields(CIPHER))  # type: ignore[arg-type]
    rec = recording("slack", "app_mention")
    body = with_json(rec.body, team_id="T0ORGTEAM", enterprise_id="E0ORG")
    assert gateway.post_recording(rec, body=body) == 200
    asyncio.run(handle(gateway.envelope("slack-Ev0001AM0001")))
    assert _tokens_used(slack) == {token}


def _rotating(connection: redis.Redis, slack: SlackFake, team: str) -> Installation:
    """A rotating installation, granted by the fake through its real code exchange, now due."""
    granted = _exchange(slack, slack.grant_code(team_id=team, rotating=True))
    installation = Installation(
        team_id=team,
        enterprise_id=None,
        is_enterprise_install=False,
        bot_token=granted["access_token"],
        refresh_token=granted["refresh_token"],
        expires_at=time.time() + 60,  # inside the refresh window
    )
    connection.hset(installation.key, mapping=installation.to_fields(CIPHER))  # type: ignore[arg-type]
    return installation


def _exchange(slack: SlackFake, code: str) -> dict[str, Any]:
    response = httpx.post(
        slack.base_url + "oauth.v2.access", data={"code": code}, auth=(slack.client_id, slack.client_secret)
    )
    body: dict[str, Any] = response.json()
    assert body["ok"], body
    return body


def test_a_token_about_to_expire_is_refreshed_once_and_saved(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    old = _rotating(redis_client, slack, "T0ROT")
    asyncio.run(handle(_mention(gateway, team="T0ROT")))
    refreshes = [
        c
        for c in slack.calls(path="/oauth.v2.access")
        if isinstance(c.body, dict) and c.body.get("grant_type")
    ]
    assert len(refreshes) == 1 and refreshes[0].body["refresh_token"] == old.refresh_token
    saved = Installation.from_fields(redis_client.hgetall(old.key), CIPHER)
    assert saved.bot_token != old.bot_token and saved.refresh_token != old.refresh_token
    assert saved.expires_at and saved.expires_at > time.time() + 3600
    assert _tokens_used(slack) == {saved.bot_token}


def test_concurrent_runs_refresh_a_rotating_token_once(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    old = _rotating(redis_client, slack, "T0ROT")
    envelopes = [_mention(gateway, team="T0ROT", event_id=f"Ev0001RT000{i}") for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda e: asyncio.run(handle(e)), envelopes))
    assert all(result["status"] == "succeeded" for result in results)
    refreshes = [
        c
        for c in slack.calls(path="/oauth.v2.access")
        if isinstance(c.body, dict) and c.body.get("grant_type")
    ]
    assert len(refreshes) == 1, "a refresh token works once: only one worker may use it"
    saved = Installation.from_fields(redis_client.hgetall(old.key), CIPHER)
    assert _tokens_used(slack) == {saved.bot_token}


def _lifecycle(gateway: Ingress, team: str, event: dict[str, Any], event_id: str) -> Envelope:
    rec = recording("slack", "app_mention")
    assert (
        gateway.post_recording(rec, body=with_json(rec.body, team_id=team, event=event, event_id=event_id))
        == 200
    )
    return gateway.envelope(f"slack-{event_id}")


def test_app_uninstalled_removes_the_installation_and_runs_nothing(
    slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    installed = _install(redis_client, slack, "T0GONE")
    envelope = _lifecycle(gateway, "T0GONE", {"type": "app_uninstalled"}, "Ev0001UN0001")
    result = asyncio.run(handle(envelope))
    assert result["status"] == "ignored" and not redis_client.exists(installed.key)
    assert slack.calls(path="/chat.*") == []


@pytest.mark.parametrize(
    ("tokens", "removed"), [({"oauth": [], "bot": ["U0FAKEBOT"]}, True), ({"oauth": ["U1"]}, False)]
)
def test_tokens_revoked_removes_the_installation_only_for_the_bot(
    tokens: dict[str, list[str]], removed: bool, slack: SlackFake, gateway: Ingress, redis_client: redis.Redis
) -> None:
    installed = _install(redis_client, slack, "T0REV")
    envelope = _lifecycle(gateway, "T0REV", {"type": "tokens_revoked", "tokens": tokens}, "Ev0001RV0001")
    asyncio.run(handle(envelope))
    assert redis_client.exists(installed.key) == (0 if removed else 1)
