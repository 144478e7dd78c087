"""Follow-ups: what a person adds to a conversation while a run works on it.

A follow-up is a later delivery of the same conversation (a Slack thread reply that mentions
the bot, a comment on the GitHub issue, a runs-API request with the same ``session_id``).
Each platform's payload module says which deliveries are follow-ups (``FollowUp``, with the
``Message`` the agent sees); ``GATEWAY_FOLLOWUPS`` says what happens to them. With ``steer``
the worker hands one to the run holding its conversation: it lands in that run's inbox in
Redis (``handlers.state.inbox``) and is copied into the run's ``Mailbox``, where
``Run.next_message`` and ``Run.pending_messages`` read it, oldest first.

A ``Mailbox`` counts what the agent read; the run's ending commits that count, in the same
transaction as the rest of the ending: read follow-ups are done, unread ones run on their own.
A rerun (the worker died, a retry) starts the agent afresh, so its mailbox is filled from the
start of the inbox again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FollowUp", "Mailbox", "Message"]


@dataclass(frozen=True)
class Message:
    """One follow-up as the agent reads it: the words, who wrote them, and the delivery they came in."""

    text: str
    actor: str | None
    platform: str
    delivery_id: str
    received_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields, as stored in the inbox."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """The message stored by ``to_dict`` (missing fields become empty)."""
        actor = data.get("actor")
        return cls(
            text=str(data.get("text") or ""),
            actor=str(actor) if actor else None,
            platform=str(data.get("platform") or ""),
            delivery_id=str(data.get("delivery_id") or ""),
            received_at=str(data.get("received_at") or ""),
        )


@dataclass(frozen=True)
class FollowUp:
    """A delivery that continues a conversation: its ``message``, and whether it asks to stop.

    ``stop`` is true for the stop word (``GATEWAY_STOP_WORD``, in the platform's own syntax) and
    for the Slack Stop button; ``target`` is the run a Stop button names (``None``: whatever
    run holds the conversation).
    """

    message: Message
    stop: bool = False
    target: str | None = None


class Mailbox:
    """The follow-ups one run attempt received, in arrival order, and how many it read.

    Thread-safe: the worker adds messages from its I/O threads; a synchronous agent reads from
    its own thread, an async one awaits ``next`` on the worker's loop.
    """

    def __init__(self) -> None:
        self.loading = threading.Lock()
        """Held while messages are loaded from Redis, so two loads never append the same ones."""
        self._lock = threading.Lock()
        self._items: list[Message] = []
        self._read = 0
        self._closed = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def loaded(self) -> int:
        """How many messages were added (the inbox position to load from next)."""
        with self._lock:
            return len(self._items)

    @property
    def read(self) -> int:
        """How many messages the agent has taken."""
        with self._lock:
            return self._read

    def taken(self) -> tuple[Message, ...]:
        """The messages the agent has taken, oldest first."""
        with self._lock:
            return tuple(self._items[: self._read])

    def add(self, messages: Iterable[Message]) -> None:
        """Append ``messages`` and wake whoever waits in ``next``."""
        with self._lock:
            self._items.extend(messages)
            self._wake()

    def close(self) -> None:
        """The run is stopping: ``next`` returns ``None`` from now on unless a message is there."""
        with self._lock:
            self._closed = True
            self._wake()

    def take_pending(self) -> list[Message]:
        """Every message not taken yet (marking them taken), without waiting."""
        with self._lock:
            pending = self._items[self._read :]
            self._read = max(self._read, len(self._items))
            return pending

    def count_read(self, count: int) -> None:
        """Count the first ``count`` messages as taken, loaded yet or not (an earlier attempt
        already answered with them)."""
        with self._lock:
            self._read = max(self._read, count)

    def take_next(self) -> Message | None:
        """The oldest message not taken yet (marking it taken), or ``None``."""
        with self._lock:
            return self._take_locked()

    async def next(self, within: float | None) -> Message | None:
        """The oldest message not taken yet, waiting up to ``within`` s (``None``: until one
        comes or the mailbox is closed)."""
        loop = asyncio.get_running_loop()
        end = None if within is None else loop.time() + max(0.0, within)
        while True:
            with self._lock:
                message = self._take_locked()
                if message is not None or self._closed:
                    return message
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                self._forget(future)
                return self.take_next()
            await asyncio.wait({future}, timeout=left)
            self._forget(future)

    def _take_locked(self) -> Message | None:
        if self._read >= len(self._items):
            return None
        self._read += 1
        return self._items[self._read - 1]

    def _wake(self) -> None:
        for loop, future in self._waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                pass
        self._waiters.clear()

    def _forget(self, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiters = [(loop, f) for loop, f in self._waiters if f is not future]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
