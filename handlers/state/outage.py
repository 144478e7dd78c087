"""Riding out a Redis outage: call again, with backoff, until Redis answers or the wait is over.

Everything a run keeps in Redis (its claim, its reply record, its ending) is worth waiting for:
a restart or a failover takes seconds, and giving up would either strand a claim or fail a run
that only needed to wait. ``ride_out`` repeats a call while it fails with ``is_redis_outage``
errors, backing off from ``FIRST_WAIT`` to ``LONGEST_WAIT`` with jitter; any other error is
raised at once. ``until`` (a Unix time) bounds the wait; without it the call is repeated for as
long as the caller's task lives (the worker's endings, which nothing else may write).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from handlers.retry import describe, is_redis_outage

__all__ = ["FIRST_WAIT", "LONGEST_WAIT", "ride_out"]

T = TypeVar("T")

logger = logging.getLogger("handlers.state")

FIRST_WAIT = 0.1
LONGEST_WAIT = 2.0


async def ride_out(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    until: float | None = None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
) -> T:
    """``await attempt()``, again after each Redis outage error, until it succeeds.

    Raises the last error once waiting longer would pass ``until``. ``what`` names the call
    in the two log lines an outage produces (Redis lost, Redis back).
    """
    wait, failures = FIRST_WAIT, 0
    while True:
        try:
            result = await attempt()
        except Exception as error:
            if not is_redis_outage(error) or (until is not None and time.time() + wait > until):
                raise
            if failures == 0:
                log.warning(
                    f"Redis unavailable; {what} waits for it", extra={"fields": {"error": describe(error)}}
                )
            failures += 1
            await asyncio.sleep(random.uniform(wait / 2, wait))  # noqa: S311 - jitter, not crypto
            wait = min(wait * 2, LONGEST_WAIT)
            continue
        if failures:
            log.info(f"Redis is back; {what} went through", extra={"fields": {"failed_attempts": failures}})
        return result
