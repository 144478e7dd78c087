"""What the platform modules share inside a worker process: settings, Redis and the SDK clients.

Everything is built once per distinct ``Settings`` (settings are frozen and hashable) and then
reused by every run of the process: clients keep their connection pools, Redis its pool. Tests
that change the environment get fresh objects because their ``Settings`` differ.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import github
import redis
import stripe
from slack_sdk import WebClient

from gateway.config import Settings
from handlers import clients
from handlers.github_auth import GitHubCredentials


@dataclass(frozen=True)
class Services:
    """The settings of this process and the clients built from them."""

    settings: Settings
    redis: redis.Redis

    @property
    def slack(self) -> WebClient:
        """The Slack Web API client (``PermanentError`` without ``SLACK_BOT_TOKEN``)."""
        return _slack(self.settings)

    @property
    def stripe(self) -> stripe.StripeClient:
        """The Stripe client (``PermanentError`` without ``STRIPE_API_KEY``)."""
        return _stripe(self.settings)

    @property
    def github_app(self) -> bool:
        """True when the worker authenticates as a GitHub App (installation tokens)."""
        gh = self.settings.github
        return bool(gh.app_id and gh.app_private_key)

    def github(self, installation_id: int | None) -> github.Github:
        """A PyGithub client for the event's installation. Blocking (may fetch a token): call it
        through ``clients.call``."""
        token = _credentials(self.settings).token_for(installation_id)
        return _github(self.settings, token)


def current() -> Services:
    """The services for the settings in the environment right now."""
    return of(Settings.from_environ())


def of(settings: Settings) -> Services:
    """The services built from ``settings``, shared by every run of this process that uses them."""
    return _services(settings)


@functools.lru_cache(maxsize=8)
def _services(settings: Settings) -> Services:
    return Services(settings=settings, redis=redis.Redis.from_url(settings.redis_url))


@functools.lru_cache(maxsize=8)
def _slack(settings: Settings) -> WebClient:
    return clients.slack_client(settings)


@functools.lru_cache(maxsize=8)
def _stripe(settings: Settings) -> stripe.StripeClient:
    return clients.stripe_client(settings)


@functools.lru_cache(maxsize=8)
def _credentials(settings: Settings) -> GitHubCredentials:
    return GitHubCredentials(settings)


@functools.lru_cache(maxsize=64)
def _github(settings: Settings, token: str) -> github.Github:
    # One client per token: installation tokens rotate hourly, so this stays small.
    return clients.github_client(settings, token)
