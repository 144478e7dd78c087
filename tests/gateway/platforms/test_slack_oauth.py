"""Slack's OAuth v2 install flow through the real app, exchanging codes with the fake Slack API over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from cryptography.fernet import Fernet
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.installations import Cipher, Installation
from tests.fakes import SlackFake

KEY = Fernet.generate_key().decode()


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def _settings(redis_url: str, slack: SlackFake, **extra: str) -> Settings:
    environ = {
        "REDIS_URL": redis_url,
        "SLACK_SIGNING_SECRET": "s",
        "SLACK_API_URL": slack.base_url,
        "SLACK_CLIENT_ID": slack.client_id,
        "SLACK_CLIENT_SECRET": slack.client_secret,
        "GATEWAY_ENCRYPTION_KEY": KEY,
        **extra,
    }
    return Settings.from_environ({k: v for k, v in environ.items() if v})


@pytest.fixture
def client(redis_url: str, slack: SlackFake) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(redis_url, slack)), follow_redirects=False) as test_client:
        yield test_client


def _start(client: TestClient) -> str:
    response = client.get("/slack/install")
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["location"]).query)["state"][0]


def test_install_sends_the_browser_to_slack_with_a_state_bound_to_a_cookie(
    client: TestClient, slack: SlackFake, redis_client: redis.Redis
) -> None:
    response = client.get("/slack/install")
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == slack.origin and location.path == "/oauth/v2/authorize"
    query = parse_qs(location.query)
    assert query["client_id"] == [slack.client_id] and "chat:write" in query["scope"][0].split(",")
    state = query["state"][0]
    assert client.cookies["slack_oauth_state"] == state
    assert "httponly" in response.headers["set-cookie"].lower()
    assert 0 < redis_client.ttl(f"gateway:slack:oauth-state:{state}") <= 600


def test_the_redirect_exchanges_the_code_and_stores_the_token_encrypted(
    client: TestClient, slack: SlackFake, redis_client: redis.Redis
) -> None:
    state = _start(client)
    code = slack.grant_code(team_id="T0OTHER", team_name="Other Co")
    response = client.get("/slack/oauth_redirect", params={"code": code, "state": state})
    assert response.status_code == 200 and "Other Co" in response.text
    (call,) = slack.calls(path="/oauth.v2.access")
    assert call.headers["authorization"].startswith("Basic ") and call.body == {"code": code}
    stored = redis_client.hgetall("gateway:slack:installation:-:T0OTHER")
    token = slack.tokens[-1]
    assert token.encode() not in b"".join(stored.values())
    installation = Installation.from_fields(stored, Cipher((KEY,)))
    assert installation.bot_token == token and installation.team_id == "T0OTHER"
    assert installation.refresh_token is None and installation.expires_at is None
    assert not redis_client.exists(f"gateway:slack:oauth-state:{state}")


def test_a_rotating_token_is_stored_with_its_refresh_token_and_expiry(
    client: TestClient, slack: SlackFake, redis_client: redis.Redis
) -> None:
    state = _start(client)
    code = slack.grant_code(team_id="T0ROT", rotating=True)
    assert client.get("/slack/oauth_redirect", params={"code": code, "state": state}).status_code == 200
    stored = Installation.from_fields(
        redis_client.hgetall("gateway:slack:installation:-:T0ROT"), Cipher((KEY,))
    )
    assert stored.bot_token.startswith("xoxe.xoxb-") and stored.refresh_token and stored.expires_at


@pytest.mark.parametrize("case", ["replayed", "no cookie", "other cookie", "unknown state", "denied"])
def test_a_redirect_without_its_own_fresh_state_installs_nothing(
    case: str, client: TestClient, slack: SlackFake, redis_client: redis.Redis
) -> None:
    state = _start(client)
    params = {"code": slack.grant_code(team_id="T0BAD"), "state": state}
    if case == "replayed":
        client.get(
            "/slack/oauth_redirect", params={"code": slack.grant_code(team_id="T0BAD"), "state": state}
        )
        redis_client.delete("gateway:slack:installation:-:T0BAD")
    elif case == "no cookie":
        client.cookies.clear()
    elif case == "other cookie":
        client.cookies.clear()
        client.cookies.set("slack_oauth_state", "someone-elses")
    elif case == "unknown state":
        redis_client.delete(f"gateway:slack:oauth-state:{state}")
    else:
        params = {"error": "access_denied", "state": state}
    response = client.get("/slack/oauth_redirect", params=params)
    assert response.status_code == 400 and "/slack/install" in response.text
    assert not redis_client.exists("gateway:slack:installation:-:T0BAD")


def test_a_code_slack_refuses_installs_nothing(
    client: TestClient, slack: SlackFake, redis_client: redis.Redis
) -> None:
    state = _start(client)
    response = client.get("/slack/oauth_redirect", params={"code": "not-a-code", "state": state})
    assert response.status_code == 400 and "invalid_code" in response.text
    assert redis_client.keys("gateway:slack:installation:*") == []


def test_without_client_credentials_there_is_no_install_route(redis_url: str, slack: SlackFake) -> None:
    settings = _settings(redis_url, slack, SLACK_CLIENT_ID="", SLACK_CLIENT_SECRET="")
    with TestClient(create_app(settings)) as plain:
        assert plain.get("/slack/install").status_code == 404


def test_client_credentials_without_an_encryption_key_stop_the_app(redis_url: str, slack: SlackFake) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_ENCRYPTION_KEY"):
        create_app(_settings(redis_url, slack, GATEWAY_ENCRYPTION_KEY=""))


def test_a_bad_encryption_key_is_refused_naming_the_variable(redis_url: str, slack: SlackFake) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_ENCRYPTION_KEY: each value must be a Fernet key"):
        _settings(redis_url, slack, GATEWAY_ENCRYPTION_KEY="not-a-key")


def test_an_old_key_still_decrypts_after_a_new_one_is_put_first() -> None:
    installation = Installation(
        team_id="T1", enterprise_id=None, is_enterprise_install=False, bot_token="xoxb-1"
    )
    fields = installation.to_fields(Cipher((KEY,)))
    new = Fernet.generate_key().decode()
    assert Installation.from_fields(fields, Cipher((new, KEY))).bot_token == "xoxb-1"
    with pytest.raises(ConfigError):
        Installation.from_fields(fields, Cipher((new,)))
