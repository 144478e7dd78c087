"""Slack's Web API client for the worker, ``response_url`` posts, and how slack-sdk's errors become ours.

The client is built once per worker (``web_client(services)``) at the configured API URL with
an explicit timeout, and without slack-sdk's retry handlers: its default handler re-sends after
a connection error, which can post twice; ``call`` retries under the one policy instead.
Slack answers HTTP 200 with ``ok: false`` for most refusals; the error codes below that another
attempt may fix are transient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from handlers import clients
from handlers.config import SlackSettings
from handlers.errors import HandlerError, PermanentError, RateLimited, TransientError
from handlers.retry import retry_after_header
from handlers.services import Services
from handlers.slack.budget import SlackBudget

__all__ = [
    "ERRORS",
    "budget_for",
    "build_client",
    "call",
    "is_configured",
    "respond",
    "use_workspace_token",
    "web_client",
]

T = TypeVar("T")

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class _SlackErrors:
    """slack-sdk's exceptions as ours (``clients.ErrorTranslation``)."""

    platform = "slack"

    def translate(self, exc: BaseException) -> HandlerError | None:
        if isinstance(exc, SlackApiError):
            response = exc.response
            code = str(response.get("error", "")) if response.data else ""
            if response.status_code == 429 or code in _RATE_LIMITED:
                return RateLimited(
                    f"Slack {code or response.status_code}", retry_after=retry_after_header(response.headers)
                )
            if response.status_code >= 500 or code in _TRANSIENT:
                return TransientError(
                    f"Slack {code or response.status_code}", retry_after=retry_after_header(response.headers)
                )
            return PermanentError(f"Slack refused the call: {code or response.status_code}")
        if isinstance(exc, SlackClientError):
            return TransientError(f"network error: {type(exc).__name__}")
        return None

    def is_unapplied(self, exc: BaseException) -> bool:
        if isinstance(exc, SlackApiError):
            return exc.response.status_code == 429 or exc.response.get("error") in (
                "ratelimited",
                "rate_limited",
            )
        return False


ERRORS = _SlackErrors()


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``clients.call`` with slack-sdk's errors translated (same options: policy, deadline, idempotent)."""
    return await clients.call(function, *args, translation=ERRORS, **kwargs)


# The bot token of the workspace the current run's delivery came from (an installation), set
# by ``handlers.slack.handle`` before the run; ``None`` means ``SLACK_BOT_TOKEN``. A context
# variable, so each run (its own asyncio task, and the threads its SDK calls run in) sees its own.
_WORKSPACE_TOKEN: ContextVar[str | None] = ContextVar("slack_workspace_token", default=None)


def use_workspace_token(token: str | None) -> None:
    """Reply with ``token`` (the installing workspace's) for the rest of this run; ``None``:
    ``SLACK_BOT_TOKEN``."""
    _WORKSPACE_TOKEN.set(token)


def is_configured(services: Services) -> bool:
    """True when this run has a token (its workspace's, or ``SLACK_BOT_TOKEN``): otherwise replies
    are only logged."""
    return bool(_WORKSPACE_TOKEN.get() or services.settings.slack.bot_token)


def web_client(services: Services) -> WebClient:
    """The Web API client for this run's workspace (``PermanentError`` when there is no token).

    ``SLACK_BOT_TOKEN``'s client is built once per worker; a workspace's is cheap to build per call
    (its token rotates, so it is not kept).
    """
    token = _WORKSPACE_TOKEN.get()
    if token:
        return build_client(dataclasses.replace(services.settings.slack, bot_token=token))
    return services.shared("slack.web_client", lambda: build_client(services.settings.slack))


def budget_for(services: Services) -> SlackBudget:
    """The rate budget every worker shares per workspace and method (``handlers.slack.budget``)."""
    distribution = services.settings.slack.distribution
    return services.shared("slack.budget", lambda: SlackBudget(services.redis, distribution=distribution))


def build_client(settings: SlackSettings) -> WebClient:
    """A Slack Web API client for the bot token; raises ``PermanentError`` when there is none."""
    if not settings.bot_token:
        raise PermanentError("SLACK_BOT_TOKEN is not set: the worker cannot reply in Slack")
    return WebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        timeout=clients.SDK_TIMEOUT_SECONDS,
        retry_handlers=[],
    )


def respond(url: str, body: dict[str, Any]) -> None:
    """POST ``body`` to a Slack ``response_url`` (blocking; use through ``call``).

    Slack answers a response URL with a plain status, not ``ok``/``error`` JSON, so the status is
    turned into our errors here like every other SDK outcome.
    """
    response = WebhookClient(url, timeout=clients.SDK_TIMEOUT_SECONDS, retry_handlers=[]).send_dict(body)
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientError(f"Slack response_url {status}", retry_after=retry_after_header(response.headers))
    if status >= 400:
        raise PermanentError(f"Slack refused the response_url post: {status} {response.body[:100]}")
