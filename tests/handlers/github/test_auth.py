"""GitHub App authentication against the fake GitHub API (which checks the RS256 JWT)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.config import WorkerSettings
from handlers.errors import PermanentError, TransientError
from handlers.github.auth import GitHubAppAuth, GitHubCredentials
from tests.fakes import GitHubFake

APP_ID = 4242


def _key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE, PUBLIC = _key()


def test_installation_token_is_obtained_with_a_valid_jwt_and_cached() -> None:
    with GitHubFake(app_id=APP_ID, app_public_key=PUBLIC) as gh:
        auth = GitHubAppAuth(str(APP_ID), PRIVATE, gh.base_url)
        first = auth.installation_token(7)
        assert auth.installation_token(7) == first
        assert [t["installation_id"] for t in gh.issued_tokens] == [7]
        assert first == gh.issued_tokens[0]["token"]


def test_token_is_replaced_five_minutes_before_it_expires() -> None:
    with GitHubFake(app_id=APP_ID, app_public_key=PUBLIC, token_lifetime=240) as gh:  # 4-minute tokens
        auth = GitHubAppAuth(str(APP_ID), PRIVATE, gh.base_url)
        first = auth.installation_token(7)
        assert auth.installation_token(7) != first
        assert len(gh.issued_tokens) == 2


def test_works_under_a_github_enterprise_prefix() -> None:
    with GitHubFake(app_id=APP_ID, app_public_key=PUBLIC, prefix="/api/v3") as gh:
        assert gh.base_url.endswith("/api/v3")
        assert GitHubAppAuth(str(APP_ID), PRIVATE, gh.base_url).installation_token(1)


def test_a_key_the_app_does_not_know_is_a_permanent_error_naming_the_settings() -> None:
    other, _ = _key()
    with GitHubFake(app_id=APP_ID, app_public_key=PUBLIC) as gh:
        with pytest.raises(PermanentError, match="GITHUB_APP_PRIVATE_KEY"):
            GitHubAppAuth(str(APP_ID), other, gh.base_url).installation_token(7)


def test_github_down_is_transient() -> None:
    with GitHubFake(app_id=APP_ID, app_public_key=PUBLIC) as gh:
        gh.fail_next("POST", "/app/installations/*/access_tokens", 503)
        with pytest.raises(TransientError):
            GitHubAppAuth(str(APP_ID), PRIVATE, gh.base_url).installation_token(7)


def test_credentials_pick_the_token_or_the_app() -> None:
    assert GitHubCredentials(WorkerSettings.from_environ({"GITHUB_TOKEN": "t"}).github).token_for(None) == "t"
    app = WorkerSettings.from_environ({"GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY": PRIVATE})
    with pytest.raises(PermanentError, match="names no installation"):
        GitHubCredentials(app.github).token_for(None)
    with pytest.raises(PermanentError, match="GITHUB_TOKEN"):
        GitHubCredentials(WorkerSettings.from_environ({}).github).token_for(None)
