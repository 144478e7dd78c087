"""The one retry policy: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import random

import httpx
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from handlers.errors import PermanentError, RunCancelled, RunTimedOut, TransientError
from handlers.retry import RetryPolicy, is_redis_outage, is_transient, retry_after


def _status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://api.example/x")
    return httpx.HTTPStatusError(
        "x", request=request, response=httpx.Response(status, headers=headers, request=request)
    )


@pytest.mark.parametrize(
    "error",
    [
        TransientError("503"),
        httpx.ConnectError("down"),
        httpx.ReadTimeout("slow"),
        TimeoutError(),
        ConnectionResetError(),
        _status_error(429),
        _status_error(502),
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
    ],
)
def test_transient_failures_are_retried(error: BaseException) -> None:
    assert is_transient(error)
    assert RetryPolicy().decide(error, retries_so_far=0).retry


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("auth"),
        _status_error(401),
        _status_error(404),
        _status_error(400),
        ValueError("bug"),
        RunTimedOut(1.0),
        RunCancelled("j"),
    ],
)
def test_permanent_failures_fail_at_once(error: BaseException) -> None:
    decision = RetryPolicy().decide(error, retries_so_far=0)
    assert not decision.retry and decision.reason.startswith(type(error).__name__)


def test_gives_up_after_max_retries() -> None:
    decision = RetryPolicy(max_retries=3).decide(TransientError("x"), retries_so_far=3)
    assert not decision.retry and "gave up after 3 retries" in decision.reason


def test_retry_after_is_honoured_but_capped() -> None:
    assert retry_after(_status_error(429, {"Retry-After": "7"})) == 7.0
    policy = RetryPolicy(base=0.1, cap=30)
    assert policy.backoff(1, TransientError("x", retry_after=12)) >= 12
    assert policy.backoff(1, TransientError("x", retry_after=1000)) == 30


@given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers())
def test_backoff_is_jittered_exponential_and_capped(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base=2.0, cap=300.0)
    delay = policy.backoff(attempt, rng=random.Random(seed))
    assert 0 <= delay <= min(300.0, 2.0 * 2 ** (attempt - 1))


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.AuthenticationError("invalid username-password pair"),
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        redis.exceptions.NoScriptError("No matching script"),
        redis.exceptions.DataError("Invalid input of type: 'NoneType'"),
    ],
)
def test_redis_errors_that_waiting_cannot_fix_are_permanent(error: BaseException) -> None:
    assert not is_redis_outage(error)
    assert not is_transient(error)
