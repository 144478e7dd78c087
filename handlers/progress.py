"""Forwarding progress and streamed answer text to the platform without slowing the agent.

Progress (``ProgressRelay``) is throttled, latest wins; streamed text (``StreamRelay``) is
throttled and coalesced, nothing dropped.

``run.progress(text)`` must return at once, but the platform limits edits (Slack's
``chat.update`` is Tier 3, about 50 a minute per workspace). The relay keeps only the newest
pending message and sends at most one per ``interval`` (per run) from a background task;
intermediate messages are dropped. What all runs of a workspace send together is bounded by the
platform's own budget (Slack: ``handlers.slack.budget``, which drops progress before answers).
``close()`` is awaited before the final answer is posted: it drops what is pending and waits for
an edit already on the wire, so a late progress edit can never overwrite the answer.

``run.stream(text)`` (from the agent's thread or the loop) must return at once too. The
``StreamRelay`` appends the text to a buffer and sends what gathered since its previous call
(never empty, in order, one call at a time, at most one per ``interval``) from a background task.
A failed call is logged and its text not sent again (``run.streamed`` keeps the whole text, so
the platform can tell what it showed); a 429's ``Retry-After`` delays the next call. ``close()``
is awaited before the run's ending is shown (``deliver``, ``on_timeout``, ``on_cancel``,
``on_failure``): it refuses new text, waits out the interval, sends what is pending and awaits
that call (each wait bounded by ``CLOSE_WAIT``), so the platform has every streamed piece before
it shows the answer of record.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

from handlers.retry import describe, retry_after

__all__ = ["CLOSE_WAIT", "ProgressRelay", "StreamRelay"]

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
                self._next_at = _after_failure(self._next_at, self._clock(), exc)
                self._log.warning("progress not forwarded", extra={"fields": {"error": describe(exc)}})
            finally:
                self._sending = False


class StreamRelay:
    """Sends streamed text through ``send(delta)``: coalesced, in order, one call at a time, at
    most one per ``interval`` seconds. ``push`` may be called from any thread; everything else
    runs on ``loop`` (the running loop when the relay is made)."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float,
        log: logging.LoggerAdapter[logging.Logger],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send, self._interval, self._log, self._clock = send, interval, log, clock
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._next_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.sent_chars = 0
        """Characters handed to ``send`` by calls that succeeded."""

    def push(self, text: str) -> None:
        """Queue ``text`` behind what is pending and return at once (ignored once closed)."""
        with self._lock:
            if self._closed or not text:
                return
            self._pending.append(text)
        if _on_loop(self._loop):
            self._wake()
        else:
            self._loop.call_soon_threadsafe(self._wake)

    async def close(self) -> None:
        """Refuse new text, then send what is pending and await the last call (bounded)."""
        with self._lock:
            self._closed = True
        self._wake()
        task = self._task
        if task is None or task.done():
            return
        await asyncio.wait({task}, timeout=self._interval + CLOSE_WAIT)
        if not task.done():
            task.cancel()
            self._log.warning("streamed text not forwarded: the platform took too long")

    def _wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._pump())

    async def _pump(self) -> None:
        # Bounded: each pass takes all pending text; the task ends when nothing is left.
        while self._has_pending():
            wait = self._next_at - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            with self._lock:
                delta = "".join(self._pending)
                self._pending.clear()
            self._next_at = self._clock() + self._interval
            try:
                await self._send(delta)
            except Exception as exc:  # noqa: BLE001 - the reply, not the stream, is the answer of record
                self._next_at = _after_failure(self._next_at, self._clock(), exc)
                self._log.warning(
                    "streamed text not forwarded",
                    extra={"fields": {"error": describe(exc), "chars": len(delta)}},
                )
            else:
                self.sent_chars += len(delta)

    def _has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending)


def _after_failure(next_at: float, now: float, exc: BaseException) -> float:
    """When the next call may go after a failed one: a 429's ``Retry-After`` pushes it out."""
    return max(next_at, now + (retry_after(exc) or 0.0))


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
