"""The fake GitHub refuses what GitHub does — driven by the real PyGithub."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import github
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from github import Auth

from tests.fakes import GitHubFake
from tests.fakes.github_api import verify_rs256

REPO, APP_ID, INSTALLATION = "acme/widgets", 4242, 7
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


@pytest.fixture
def gh() -> Iterator[GitHubFake]:
    with GitHubFake(app_id=APP_ID, app_public_key=KEY.public_key()) as fake:
        fake.seed_issue(REPO, 1)
        yield fake


def _client(fake: GitHubFake, auth: Auth.Auth | None = None) -> github.Github:
    return github.Github(
        auth=auth or Auth.Token(fake.token), base_url=fake.base_url, retry=None, seconds_between_writes=None
    )


def _installation_client(fake: GitHubFake) -> github.Github:
    token = github.GithubIntegration(
        auth=Auth.AppAuth(APP_ID, PEM), base_url=fake.base_url, retry=None
    ).get_access_token(INSTALLATION)
    return _client(fake, Auth.Token(token.token))


@pytest.mark.parametrize("body", ["x" * 65_537, "😀" * 65_537])
def test_comment_bodies_past_65536_characters_are_refused(gh: GitHubFake, body: str) -> None:
    with pytest.raises(github.GithubException) as raised:
        _client(gh).get_repo(REPO).get_issue(1).create_comment(body)
    assert raised.value.status == 422
    assert raised.value.data["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"
    assert gh.comments(REPO, 1) == []


def test_a_comment_of_65536_characters_is_taken(gh: GitHubFake) -> None:
    _client(gh).get_repo(REPO).get_issue(1).create_comment("é" * 65_536)
    assert len(gh.comments(REPO, 1)[0]["body"]) == 65_536


def _check_run(fake: GitHubFake, **fields: Any) -> Any:
    repo = _installation_client(fake).get_repo(REPO)
    return repo.create_check_run(name="triage", head_sha="a" * 40, **fields)


def test_check_run_output_is_limited_in_bytes_not_characters(gh: GitHubFake) -> None:
    _check_run(gh, status="completed", conclusion="neutral", output={"title": "t", "summary": "x" * 65_535})
    with pytest.raises(github.GithubException) as raised:
        _check_run(
            gh, status="completed", conclusion="neutral", output={"title": "t", "summary": "é" * 40_000}
        )
    assert raised.value.status == 422
    assert raised.value.data["errors"][0]["message"] == "summary exceeds a maximum bytesize of 65535"


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "waiting"},  # GitHub Actions only
        {"status": "completed"},  # no conclusion
        {"conclusion": "stale"},  # only GitHub sets it
        {"conclusion": "neutral", "output": {"title": "no summary"}},
        {"output": {"title": "t", "summary": "s", "annotations": [{}] * 51}},
    ],
)
def test_check_runs_an_app_may_not_create_are_refused(gh: GitHubFake, fields: dict[str, Any]) -> None:
    with pytest.raises(github.GithubException) as raised:
        _check_run(gh, **fields)
    assert raised.value.status == 422 and gh.check_runs() == []


def test_an_app_jwt_more_than_ten_minutes_ahead_is_refused(gh: GitHubFake) -> None:
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iat": now - 60, "exp": now + 660, "iss": str(APP_ID)}
    token = _jwt(header, claims)
    verify_rs256(token, KEY.public_key())  # well signed: only exp is wrong
    url = f"{gh.base_url}/app/installations/{INSTALLATION}/access_tokens"
    answer = httpx.post(url, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "exp" in answer.json()["message"]


def test_expired_installation_tokens_get_401_bad_credentials(gh: GitHubFake) -> None:
    client = _installation_client(gh)
    client.get_repo(REPO).get_issue(1)
    gh.expire_tokens()
    with pytest.raises(github.BadCredentialsException):
        client.get_repo(REPO).get_issue(1)


def _jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    signature = KEY.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing}.{part(signature)}"
