"""Following runs live: one Redis reader per web process, however many browsers follow runs.

Each follower of a run gets its history first (``gateway.runs.read_history``, which also says
the id of the newest event of any run at that moment), then joins the ``StreamHub``: one task
that reads the stream every run's events go to (``keys.EVENTS``) with a single ``XREAD BLOCK``
and hands each event to the followers of its run. A thousand followers of a hundred runs cost
one Redis connection and one blocking read. A hub that starts reads from its first follower's
newest id; a follower that joins a hub already past that point fetches the events in between
from its run's history itself, so none is missed, and none is seen twice (ids only grow).

``sse`` writes the server-sent events: ``id:``, ``event:`` and ``data:`` per event, a comment
line every ``KEEPALIVE`` seconds while nothing happens, and the end after the ``done`` event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from rq.utils import as_text

from gateway import keys
from gateway.runs import RunEvent, decode_stream, is_newer

__all__ = ["BLOCK_MS", "KEEPALIVE", "StreamHub", "follow", "sse"]

logger = logging.getLogger("gateway.stream")

KEEPALIVE = 15.0
BLOCK_MS = 200  # a newly followed run joins the shared read within this
MAX_QUEUED = 1000  # events waiting for one slow follower; past this it is dropped and reconnects
_COUNT = 200


class StreamHub:
    """Reads the shared events stream and fans each event out to its run's followers."""

    def __init__(self, connection: aioredis.Redis) -> None:
        self._redis = connection
        self._last = "0-0"  # id of the last event read from the shared stream
        self._followers: dict[str, set[asyncio.Queue[RunEvent | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def join(self, job_id: str, tip: str) -> tuple[asyncio.Queue[RunEvent | None], str]:
        """Follow ``job_id``, whose history was read when ``tip`` was the newest event id.

        Returns the queue and the id the hub reads on from: when it is newer than ``tip``, the
        caller fetches its run's events in between itself.
        """
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue(MAX_QUEUED)
        self._followers.setdefault(job_id, set()).add(queue)
        if self._task is None or self._task.done():
            self._last = tip
            self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return queue, self._last

    def leave(self, job_id: str, queue: asyncio.Queue[RunEvent | None]) -> None:
        """Stop following ``job_id`` with ``queue``."""
        followers = self._followers.get(job_id)
        if followers is None:
            return
        followers.discard(queue)
        if not followers:
            del self._followers[job_id]

    @property
    def followers(self) -> int:
        """How many follow a run through this hub right now."""
        return sum(len(queues) for queues in self._followers.values())

    async def aclose(self) -> None:
        """Stop reading and end every follower's stream."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for queues in self._followers.values():
            for queue in queues:
                _offer(queue, None)

    async def _read_loop(self) -> None:
        while self._followers:
            try:
                answer: Any = await self._redis.xread({keys.EVENTS: self._last}, count=_COUNT, block=BLOCK_MS)
            except (TimeoutError, redis.RedisError, OSError) as exc:
                logger.warning("reading run events failed: %s; retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for _, entries in answer or ():
                if entries:
                    self._last = as_text(entries[-1][0])
                for job_id, event in decode_stream(entries):
                    self._dispatch(job_id, event)

    def _dispatch(self, job_id: str, event: RunEvent) -> None:
        for queue in list(self._followers.get(job_id, ())):
            if not _offer(queue, event):
                self.leave(job_id, queue)
                _offer(queue, None, force=True)


def _offer(queue: asyncio.Queue[RunEvent | None], item: RunEvent | None, *, force: bool = False) -> bool:
    if force and queue.full():
        queue.get_nowait()
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


async def follow(
    hub: StreamHub,
    job_id: str,
    *,
    history: list[RunEvent],
    tip: str,
    after: str | None,
    fetch: Callable[[str, str], Any],
) -> AsyncIterator[RunEvent | None]:
    """The events of ``job_id``: ``history``, then live ones from ``hub``; ``None`` while idle.

    ``history`` was read when ``tip`` was the newest event id of any run; ``after`` is where the
    caller resumed (``Last-Event-ID``). ``fetch(job_id, after)`` (awaitable) reads the run's
    events after an id, for the gap between the history and where the hub reads from. Ends
    after the ``done`` event, or when the follower falls too far behind (the client then
    reconnects with its ``Last-Event-ID``).
    """
    last = after or "0-0"
    for event in history:
        yield event
        last = event.id
        if event.kind == "done":
            return
    queue, start = hub.join(job_id, tip)
    try:
        if is_newer(start, tip):
            for event in await fetch(job_id, last):
                if is_newer(event.id, last):
                    yield event
                    last = event.id
                    if event.kind == "done":
                        return
        while True:
            try:
                live = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE)
            except TimeoutError:
                yield None
                continue
            if live is None:
                return
            if is_newer(live.id, last):
                yield live
                last = live.id
                if live.kind == "done":
                    return
    finally:
        hub.leave(job_id, queue)


async def sse(events: AsyncIterator[RunEvent | None]) -> AsyncIterator[bytes]:
    """Server-sent events text for ``events``; ``None`` becomes a keep-alive comment."""
    async for event in events:
        yield b": keepalive\n\n" if event is None else event.sse
