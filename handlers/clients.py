"""One blocking SDK call, run in a thread, its errors translated into ours and retried under one policy.

Each platform package builds its own SDK client (``handlers.<platform>.client``) and says how its
SDK's exceptions become ours (an ``ErrorTranslation``); ``call`` is the one place that applies a
translation and the retry policy, so every platform call is retried the same way. The SDKs' own
retries are switched off where the clients are built: a retry decision needs to know whether a
write already happened. SDK calls are synchronous, so ``call`` runs them in a thread and never
blocks the worker's event loop. Network failures common to every SDK (``requests``, ``urllib``,
sockets) are translated here.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import requests

from handlers.errors import HandlerError, PermanentError, TransientError
from handlers.retry import RetryPolicy

__all__ = [
    "CALL_POLICY",
    "NO_RETRY",
    "SDK_TIMEOUT_SECONDS",
    "ErrorTranslation",
    "Pacer",
    "call",
    "is_unapplied",
    "translate",
]

T = TypeVar("T")

SDK_TIMEOUT_SECONDS = 15
# In-place retries of one API call: short, because the job as a whole is retried after this.
CALL_POLICY = RetryPolicy(max_retries=3, base=0.5, cap=30.0)
# Best-effort calls (progress edits): one try; the caller drops or reschedules.
NO_RETRY = RetryPolicy(max_retries=0)


class ErrorTranslation(Protocol):
    """How one SDK's exceptions become ``HandlerError`` s (each platform's ``client`` module has one)."""

    def translate(self, exc: BaseException) -> HandlerError | None:
        """Our error for ``exc``, or ``None`` when ``exc`` is not this SDK's."""

    def is_unapplied(self, exc: BaseException) -> bool:
        """True when the failed call surely changed nothing (rate-limited before it ran)."""


class Pacer(Protocol):
    """A platform's shared rate budget around one call (Slack's: ``handlers.slack.budget``)."""

    async def before_attempt(self, deadline: float | None) -> None:
        """Wait until the budget allows an attempt (never past ``deadline``)."""

    async def after_failure(self, error: HandlerError) -> None:
        """Learn from a failed attempt (a 429's ``Retry-After`` pauses every caller)."""


async def call(
    function: Callable[..., T],
    *args: Any,
    translation: ErrorTranslation | None = None,
    policy: RetryPolicy = CALL_POLICY,
    deadline: float | None = None,
    idempotent: bool = True,
    pacer: Pacer | None = None,
    **kwargs: Any,
) -> T:
    """Run one blocking SDK call in a thread, translating and retrying its errors.

    Transient failures (429 honouring Retry-After, 5xx, network) are retried under ``policy``
    while the wait still ends before ``deadline`` (a Unix time); the last error is raised as a
    ``TransientError`` or ``PermanentError``. With ``idempotent=False`` (a post that would
    duplicate) only failures that prove nothing was written (rate limits, refused connections)
    are retried in place; after a 5xx or a timeout the write may have happened, so the error is
    raised and the job's rerun looks for its marker first. A ``pacer`` is consulted before each
    attempt and told of each failure.
    """
    retries = 0
    while True:
        if pacer is not None:
            await pacer.before_attempt(deadline)
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every SDK error is translated below
            error = translate(exc, translation)
            if pacer is not None:
                await pacer.after_failure(error)
            decision = policy.decide(error, retries_so_far=retries)
            unsafe = not idempotent and not is_unapplied(exc, translation)
            late = deadline is not None and time.time() + decision.delay > deadline
            if not decision.retry or unsafe or late:
                raise error from exc
            retries += 1
            await asyncio.sleep(decision.delay)


def translate(exc: BaseException, translation: ErrorTranslation | None = None) -> HandlerError:
    """The ``HandlerError`` an SDK or network exception means; already-translated errors pass."""
    if isinstance(exc, HandlerError):
        return exc
    translated = translation.translate(exc) if translation is not None else None
    if translated is not None:
        return translated
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)):
        return TransientError(f"network error: {type(exc).__name__}")
    if isinstance(exc, (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError)):
        return TransientError(f"network error: {type(exc).__name__}")
    return PermanentError(f"{type(exc).__name__}: {exc}")


def is_unapplied(exc: BaseException, translation: ErrorTranslation | None = None) -> bool:
    """True when the failed call surely changed nothing: rate-limited or never connected."""
    if translation is not None and translation.is_unapplied(exc):
        return True
    if isinstance(exc, ConnectionRefusedError):
        return True
    reason = getattr(exc, "reason", None)  # urllib wraps the socket error
    return isinstance(reason, ConnectionRefusedError)
