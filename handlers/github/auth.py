"""GitHub credentials: a plain token, or a GitHub App's installation tokens.

An App authenticates as itself with a short-lived JWT (RS256, signed here with ``cryptography``)
and exchanges it for an installation token for the installation named in the event's
``installation.id``. Installation tokens live an hour; each is cached in the process and
replaced five minutes before it expires, or at once when GitHub refuses it (``forget``: a token
revoked early, or a clock that drifted).
https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import datetime

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.types import Clock
from handlers.config import GitHubSettings
from handlers.errors import PermanentError, TransientError

__all__ = ["GitHubAppAuth", "GitHubCredentials"]

JWT_LIFETIME = 540  # GitHub accepts at most 10 minutes
CLOCK_SKEW = 60  # issued-at in the past, as GitHub recommends, to survive clock drift
REFRESH_MARGIN = 300
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class GitHubAppAuth:
    """Makes App JWTs and caches installation tokens; safe to share between threads."""

    def __init__(self, app_id: str, private_key_pem: str, api_url: str, *, clock: Clock = time.time) -> None:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PermanentError("GITHUB_APP_PRIVATE_KEY is not an RSA key")
        self._app_id = app_id
        self._key = key
        self._api_url = api_url.rstrip("/")
        self._clock = clock
        self._tokens: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def app_jwt(self) -> str:
        """A JWT identifying the App itself, valid for nine minutes."""
        now = int(self._clock())
        header = {"alg": "RS256", "typ": "JWT"}
        claims = {"iat": now - CLOCK_SKEW, "exp": now + JWT_LIFETIME, "iss": self._app_id}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def installation_token(self, installation_id: int) -> str:
        """A token for ``installation_id``, from the cache while it has five minutes left."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached and cached[1] - self._clock() > REFRESH_MARGIN:
                return cached[0]
            token, expires_at = self._exchange(installation_id)
            self._tokens[installation_id] = (token, expires_at)
            return token

    def forget(self, installation_id: int, token: str) -> None:
        """Drop ``token`` from the cache (GitHub refused it); a newer one another run got stays."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached[0] == token:
                del self._tokens[installation_id]

    def _exchange(self, installation_id: int) -> tuple[str, float]:
        url = f"{self._api_url}/app/installations/{installation_id}/access_tokens"
        headers = {"Authorization": f"Bearer {self.app_jwt()}", "Accept": "application/vnd.github+json"}
        try:
            response = httpx.post(url, headers=headers, timeout=HTTP_TIMEOUT)
        except httpx.TransportError as exc:
            raise TransientError(f"GitHub installation token: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"GitHub installation token: HTTP {response.status_code}")
        if response.status_code != 201:
            raise PermanentError(
                f"GitHub refused an installation token for installation {installation_id}: HTTP "
                f"{response.status_code} (check GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY)"
            )
        body = response.json()
        return str(body["token"]), datetime.fromisoformat(
            body["expires_at"].replace("Z", "+00:00")
        ).timestamp()


class GitHubCredentials:
    """Answers "which token do I use for this event?" for token and App set-ups alike."""

    def __init__(self, gh: GitHubSettings, *, clock: Clock = time.time) -> None:
        self._token = gh.token
        self._app = (
            GitHubAppAuth(gh.app_id, gh.app_private_key, gh.api_url, clock=clock)
            if gh.app_id and gh.app_private_key
            else None
        )

    def token_for(self, installation_id: int | None) -> str:
        """The token for an event of ``installation_id`` (``None`` for repository webhooks)."""
        if self._app is not None:
            if installation_id is None:
                raise PermanentError("the event names no installation, so the GitHub App has no token for it")
            return self._app.installation_token(installation_id)
        if self._token:
            return self._token
        raise PermanentError(
            "neither GITHUB_TOKEN nor GITHUB_APP_ID is set: the worker cannot reply on GitHub"
        )

    def refused(self, installation_id: int | None, token: str) -> bool:
        """GitHub answered 401 to ``token``: forget it; True when a fresh one may be tried."""
        if self._app is None or installation_id is None or token == self._token:
            return False
        self._app.forget(installation_id, token)
        return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
