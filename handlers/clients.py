"""Builds the platform SDK clients and is the one place their exceptions become ours.

Clients get their base URLs from the settings (so tests and GitHub Enterprise can point them
elsewhere) and an explicit timeout. The SDKs' own retries are switched off: a retry decision
needs to know whether a write already happened, so ``call`` retries under the one policy in
``handlers.retry`` instead. SDK calls are synchronous, so ``call`` runs them in a thread and
never blocks the worker's event loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
from collections.abc import Callable
from typing import Any, TypeVar

import github
import requests
import stripe
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from gateway.config import Settings
from handlers.errors import HandlerError, PermanentError, TransientError
from handlers.retry import RetryPolicy, retry_after_header

T = TypeVar("T")

SDK_TIMEOUT_SECONDS = 15
# In-place retries of one API call: short, because the job as a whole is retried after this.
CALL_POLICY = RetryPolicy(max_retries=3, base=0.5, cap=30.0)
# Best-effort calls (progress edits): one try; the caller drops or reschedules.
NO_RETRY = RetryPolicy(max_retries=0)

# Slack answers HTTP 200 with ok:false; these error codes are worth another try.
_SLACK_TRANSIENT = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def slack_client(settings: Settings) -> WebClient:
    """A Slack Web API client for the bot token; raises ``PermanentError`` when there is none."""
    if not settings.slack.bot_token:
        raise PermanentError("SLACK_BOT_TOKEN is not set: the worker cannot reply in Slack")
    # slack-sdk's default handler re-sends after a connection error, which can post twice.
    return WebClient(
        token=settings.slack.bot_token,
        base_url=settings.slack.api_url,
        timeout=SDK_TIMEOUT_SECONDS,
        retry_handlers=[],
    )


def respond(url: str, body: dict[str, Any]) -> None:
    """POST ``body`` to a Slack ``response_url`` (blocking; use through ``call``).

    Slack answers a response URL with a plain status, not ``ok``/``error`` JSON, so the status is
    turned into our errors here like every other SDK outcome.
    """
    response = WebhookClient(url, timeout=SDK_TIMEOUT_SECONDS, retry_handlers=[]).send_dict(body)
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientError(f"Slack response_url {status}", retry_after=retry_after_header(response.headers))
    if status >= 400:
        raise PermanentError(f"Slack refused the response_url post: {status} {response.body[:100]}")


def github_client(settings: Settings, token: str) -> github.Github:
    """A PyGithub client for ``token`` (a personal/installation token) at the configured API URL.

    PyGithub's own retry would re-send a POST after a 5xx, which can post a comment twice; the
    reply code checks its marker before trying again instead. Its 1 s pause between writes is
    dropped: a worker posts at most a few writes per run.
    """
    return github.Github(
        auth=github.Auth.Token(token),
        base_url=settings.github.api_url,
        timeout=SDK_TIMEOUT_SECONDS,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def stripe_client(settings: Settings) -> stripe.StripeClient:
    """A ``StripeClient`` at the configured API base, with its network retries set to none.

    Writes carry our own idempotency keys, so retrying them through ``call`` is safe.
    """
    if not settings.stripe.api_key:
        raise PermanentError("STRIPE_API_KEY is not set: the worker cannot read or annotate Stripe objects")
    return stripe.StripeClient(
        settings.stripe.api_key,
        base_addresses={"api": settings.stripe.api_base},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=SDK_TIMEOUT_SECONDS),
    )


async def call(
    function: Callable[..., T],
    *args: Any,
    policy: RetryPolicy = CALL_POLICY,
    deadline: float | None = None,
    idempotent: bool = True,
    **kwargs: Any,
) -> T:
    """Run one blocking SDK call in a thread, translating and retrying its errors.

    Transient failures (429 honouring Retry-After, 5xx, network) are retried under ``policy``
    while the wait still ends before ``deadline`` (a Unix time); the last error is raised as a
    ``TransientError`` or ``PermanentError``. With ``idempotent=False`` (a post that would
    duplicate) only failures that prove nothing was written (rate limits, refused connections)
    are retried in place; after a 5xx or a timeout the write may have happened, so the error is
    raised and the job's rerun looks for its marker first.
    """
    retries = 0
    while True:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every SDK error is translated below
            error = translate(exc)
            decision = policy.decide(error, retries_so_far=retries)
            unsafe = not idempotent and not is_unapplied(exc)
            late = deadline is not None and time.time() + decision.delay > deadline
            if not decision.retry or unsafe or late:
                raise error from exc
            retries += 1
            await asyncio.sleep(decision.delay)


def translate(exc: BaseException) -> HandlerError:
    """The ``HandlerError`` an SDK or network exception means; already-translated errors pass."""
    if isinstance(exc, HandlerError):
        return exc
    if isinstance(exc, SlackApiError):
        return _from_slack(exc)
    if isinstance(exc, github.GithubException):
        return _from_status("GitHub", exc.status, exc.headers or {}, exc.message or _github_message(exc))
    if isinstance(exc, stripe.StripeError):
        return _from_stripe(exc)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)):
        return TransientError(f"network error: {type(exc).__name__}")
    if isinstance(
        exc, (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError, SlackClientError)
    ):
        return TransientError(f"network error: {type(exc).__name__}")
    return PermanentError(f"{type(exc).__name__}: {exc}")


def is_unapplied(exc: BaseException) -> bool:
    """True when the failed call surely changed nothing: rate-limited or never connected."""
    if isinstance(exc, SlackApiError):
        return exc.response.status_code == 429 or exc.response.get("error") in ("ratelimited", "rate_limited")
    if isinstance(exc, github.GithubException):
        return exc.status == 429
    if isinstance(exc, stripe.RateLimitError):
        return True
    if isinstance(exc, ConnectionRefusedError):
        return True
    reason = getattr(exc, "reason", None)  # urllib wraps the socket error
    return isinstance(reason, ConnectionRefusedError)


def _from_slack(exc: SlackApiError) -> HandlerError:
    response = exc.response
    code = str(response.get("error", "")) if response.data else ""
    if response.status_code == 429 or response.status_code >= 500 or code in _SLACK_TRANSIENT:
        return TransientError(
            f"Slack {code or response.status_code}", retry_after=retry_after_header(response.headers)
        )
    return PermanentError(f"Slack refused the call: {code or response.status_code}")


def _from_stripe(exc: stripe.StripeError) -> HandlerError:
    status = exc.http_status or 0
    if isinstance(exc, (stripe.RateLimitError, stripe.APIConnectionError)) or status == 429 or status >= 500:
        return TransientError(
            f"Stripe {type(exc).__name__} ({status or 'no answer'})",
            retry_after=retry_after_header(exc.headers),
        )
    return PermanentError(
        f"Stripe {type(exc).__name__} ({status}): {exc.user_message or exc.code or ''}".rstrip(": ")
    )


def _from_status(service: str, status: int, headers: dict[str, Any], message: str) -> HandlerError:
    rate_limited = status == 403 and (
        headers.get("x-ratelimit-remaining") == "0" or "rate limit" in message.lower()
    )
    if status == 429 or status >= 500 or rate_limited:
        return TransientError(f"{service} {status}: {message}", retry_after=retry_after_header(headers))
    return PermanentError(f"{service} {status}: {message}")


def _github_message(exc: github.GithubException) -> str:
    data = exc.data
    return str(data.get("message", "")) if isinstance(data, dict) else ""
