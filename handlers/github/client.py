"""GitHub's REST client for the worker (PyGithub), per token, and how PyGithub's errors become ours.

Clients are built at the configured API URL (GitHub Enterprise works) with an explicit timeout.
PyGithub's own retry would re-send a POST after a 5xx, which can post a comment twice; the reply
code checks its marker before trying again instead. Its 1 s pause between writes is dropped: a
worker posts at most a few writes per run. Which token a delivery uses is ``auth``'s answer
(a personal token, or the App installation's), cached per worker; ``call_as`` runs one call
with it and, when GitHub answers 401 to an installation token, drops that token and tries once
more with a fresh one (a 401 changed nothing, so even a comment is safe to send again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import github

from handlers import clients
from handlers.config import GitHubSettings
from handlers.errors import HandlerError, PermanentError, TransientError
from handlers.github.auth import GitHubCredentials
from handlers.retry import retry_after_header
from handlers.services import Services

__all__ = ["ERRORS", "BadCredentials", "build_client", "call", "call_as", "client_for", "is_configured"]

T = TypeVar("T")
_CLIENTS_KEPT = 64  # one client per token: installation tokens rotate hourly, so this stays small


class BadCredentials(PermanentError):
    """GitHub answered 401: the token is expired, revoked or wrong."""


class _GitHubErrors:
    """PyGithub's exceptions as ours (``clients.ErrorTranslation``)."""

    def translate(self, exc: BaseException) -> HandlerError | None:
        if not isinstance(exc, github.GithubException):
            return None
        status, headers = exc.status, exc.headers or {}
        message = exc.message or _message(exc)
        if status == 401:
            return BadCredentials(f"GitHub 401: {message or 'Bad credentials'}")
        rate_limited = status == 403 and (
            headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower()
        )
        if status == 429 or status >= 500 or rate_limited:
            return TransientError(f"GitHub {status}: {message}", retry_after=retry_after_header(headers))
        return PermanentError(f"GitHub {status}: {message}")

    def is_unapplied(self, exc: BaseException) -> bool:
        return isinstance(exc, github.GithubException) and exc.status == 429


ERRORS = _GitHubErrors()


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``clients.call`` with PyGithub's errors translated (same options: policy, deadline, idempotent)."""
    return await clients.call(function, *args, translation=ERRORS, **kwargs)


def is_configured(services: Services) -> bool:
    """True when a token or a GitHub App is set: otherwise replies are only logged."""
    gh = services.settings.github
    return bool(gh.token or gh.is_app)


async def call_as(
    services: Services, installation_id: int | None, work: Callable[..., T], *args: Any, **options: Any
) -> T:
    """``work(client, *args)`` through ``call`` with the delivery's client; after a 401 to an
    installation token, once more with a fresh token, then the 401 is the answer."""
    for attempt in (1, 2):
        client, token = await call(_client_and_token, services, installation_id)
        try:
            return await call(work, client, *args, **options)
        except BadCredentials:
            if attempt == 2 or not _credentials(services).refused(installation_id, token):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def client_for(services: Services, installation_id: int | None) -> github.Github:
    """A client for a delivery of ``installation_id`` (``None``: a repository webhook).

    Blocking (it may exchange the App's JWT for an installation token): call it through ``call``.
    """
    return _client_and_token(services, installation_id)[0]


def _client_and_token(services: Services, installation_id: int | None) -> tuple[github.Github, str]:
    token = _credentials(services).token_for(installation_id)
    cache = services.shared("github.clients", _ClientCache)
    return cache.get(token, lambda: build_client(services.settings.github, token)), token


def _credentials(services: Services) -> GitHubCredentials:
    settings = services.settings.github
    return services.shared("github.credentials", lambda: GitHubCredentials(settings))


def build_client(settings: GitHubSettings, token: str) -> github.Github:
    """A PyGithub client for ``token`` (a personal or installation token) at the configured API URL."""
    return github.Github(
        auth=github.Auth.Token(token),
        base_url=settings.api_url,
        timeout=clients.SDK_TIMEOUT_SECONDS,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


class _ClientCache:
    """The newest clients by token, at most ``_CLIENTS_KEPT`` of them; thread-safe."""

    def __init__(self) -> None:
        self._clients: OrderedDict[str, github.Github] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, build: Callable[[], github.Github]) -> github.Github:
        with self._lock:
            client = self._clients.pop(token, None) or build()
            self._clients[token] = client
            while len(self._clients) > _CLIENTS_KEPT:
                self._clients.popitem(last=False)
            return client


def _message(exc: github.GithubException) -> str:
    data = exc.data
    return str(data.get("message", "")) if isinstance(data, dict) else ""
