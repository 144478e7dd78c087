"""Forwarding progress to the platform without slowing the agent: throttled, latest wins.

``run.progress(text)`` must return at once, but the platform limits edits (Slack's
``chat.update`` is Tier 3, about 50 a minute per workspace). The relay keeps only the newest
pending message and sends at most one per ``interval`` (per run) from a background task;
intermediate messages are dropped. What all runs of a workspace send together is bounded by the
platform's own budget (Slack: ``handlers.slack.budget``, which drops progress before answers).
``close()`` is awaited before the final answer is posted: it drops what is pending and waits for
an edit already on the wire, so a late progress edit can never overwrite the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from handlers.retry import describe, retry_after

__all__ = ["CLOSE_WAIT", "ProgressRelay"]

# An edit already on the wire when the run ends gets this long to land before it is abandoned.
CLOSE_WAIT = 20.0


class ProgressRelay:
    """Sends the latest progress text through ``send``, at most once per ``interval`` seconds."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float,
        log: logging.LoggerAdapter[logging.Logger],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send, self._interval, self._log, self._clock = send, interval, log, clock
        self._pending: str | None = None
        self._next_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._sending = False
        self._closed = False

    async def push(self, text: str) -> None:
        """Queue ``text`` (replacing any pending one) and return at once."""
        if self._closed:
            return
        self._pending = text
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._pump())

    async def close(self) -> None:
        """Stop forwarding: drop pending text, wait (bounded) for an edit in flight."""
        self._closed = True
        self._pending = None
        task = self._task
        if task is None or task.done():
            return
        if not self._sending:
            task.cancel()
        await asyncio.wait({task}, timeout=CLOSE_WAIT)
        if not task.done():
            task.cancel()

    async def _pump(self) -> None:
        # Bounded: each pass consumes the pending text; a new pass needs a new push.
        while self._pending is not None and not self._closed:
            wait = self._next_at - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            text, self._pending = self._pending, None
            self._next_at = self._clock() + self._interval
            self._sending = True
            try:
                await self._send(text)
            except Exception as exc:  # noqa: BLE001 - progress is best effort; the answer is not
                self._next_at = max(self._next_at, self._clock() + (retry_after(exc) or 0.0))
                self._log.warning("progress not forwarded", extra={"fields": {"error": describe(exc)}})
            finally:
                self._sending = False
