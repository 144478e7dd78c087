"""The one retry policy: which failures are retried, after how long, and how many times.

Transient failures (``TransientError``, network errors, timeouts, HTTP 429 and 5xx, and Redis
unreachable or refusing writes: ``is_redis_outage``) are retried with exponential backoff and
full jitter, capped; a ``Retry-After`` hint is honoured (never less than the hint, still capped).
Everything else (auth, not found, bad request, agent bugs) is permanent and fails at once.
Deadline and cancellation are never retried.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from handlers.errors import HandlerError, RunCancelled, RunTimedOut, TransientError

__all__ = [
    "Decision",
    "describe",
    "is_redis_outage",
    "is_transient",
    "retry_after",
    "retry_after_header",
    "RetryPolicy",
]

# Redis down, restarting (LOADING), failing over (READONLY, MASTERDOWN) or refusing writes
# (OOM under noeviction): another attempt succeeds once the operator or Redis itself fixes it.
# Bad credentials are ConnectionError subclasses too, but waiting never fixes them.
_REDIS_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)
_REDIS_MISCONFIGURED = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)


@dataclass(frozen=True)
class Decision:
    """What to do after a failed attempt: retry after ``delay`` seconds, or fail with ``reason``."""

    retry: bool
    delay: float
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**(n-1)))."""

    max_retries: int = 5
    base: float = 2.0
    cap: float = 300.0

    def decide(
        self, error: BaseException, *, retries_so_far: int, rng: random.Random | None = None
    ) -> Decision:
        """Decide for ``error`` after ``retries_so_far`` earlier retries of the same run."""
        reason = describe(error)
        if not is_transient(error):
            return Decision(retry=False, delay=0.0, reason=reason)
        if retries_so_far >= self.max_retries:
            return Decision(False, 0.0, f"{reason} (gave up after {retries_so_far} retries)")
        return Decision(retry=True, delay=self.backoff(retries_so_far + 1, error, rng=rng), reason=reason)

    def backoff(
        self, attempt: int, error: BaseException | None = None, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        delay = (rng or random).uniform(0, ceiling)
        hint = retry_after(error) if error is not None else None
        if hint is not None:
            delay = max(delay, min(hint, self.cap))
        return delay


def is_transient(error: BaseException) -> bool:
    """True for failures another attempt may fix."""
    if isinstance(error, (RunTimedOut, RunCancelled)):
        return False
    if isinstance(error, HandlerError):
        return error.retryable
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        return status == 429 or status >= 500
    if is_redis_outage(error):
        return True
    return isinstance(error, (httpx.TransportError, ConnectionError, TimeoutError, asyncio.TimeoutError))


def is_redis_outage(error: BaseException) -> bool:
    """True when Redis is unreachable or refuses writes for now; waiting (or retrying) may fix it.

    redis-py's exceptions are not Python's ``ConnectionError`` and ``TimeoutError``, so they are
    named here. A snapshot that cannot be written (``MISCONF``) refuses writes too.
    """
    if isinstance(error, _REDIS_MISCONFIGURED):
        return False
    if isinstance(error, _REDIS_DOWN):
        return True
    return isinstance(error, redis.exceptions.ResponseError) and str(error).startswith("MISCONF")


def retry_after(error: BaseException | None) -> float | None:
    """The platform's own wait hint: ``TransientError.retry_after`` or an HTTP ``Retry-After``."""
    if isinstance(error, TransientError):
        return error.retry_after
    if isinstance(error, httpx.HTTPStatusError):
        return retry_after_header(error.response.headers)
    return None


def retry_after_header(headers: Any) -> float | None:
    """A ``Retry-After`` header in seconds, from any headers mapping (names in any case).

    ``None`` when absent, or an HTTP date (rare for APIs): the policy's own backoff applies.
    """
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def describe(error: BaseException) -> str:
    """``"TransientError: upstream 503"``: the reason recorded in the run and the failed registry."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
