"""Following runs live: one Redis reader per web process, however many browsers follow runs.

Each follower of a run gets its history first (``gateway.runs.read_events``), then joins the
``StreamHub``: one task that reads the event streams of every followed run with a single
``XREAD BLOCK`` and hands each new event to that run's followers. A thousand followers of a
hundred runs cost one Redis connection and one blocking read, not a thousand. The hub keeps,
per followed run, the id of the last event it read; a follower that joins after that id fetches
the events in between itself, so none is missed and none is seen twice (ids only grow).

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
from gateway.runs import RunEvent, decode_events

__all__ = ["BLOCK_MS", "KEEPALIVE", "StreamHub", "follow", "sse"]

logger = logging.getLogger("gateway.stream")

KEEPALIVE = 15.0
BLOCK_MS = 200  # a newly followed run joins the shared read within this
MAX_QUEUED = 1000  # events waiting for one slow follower; past this it is dropped and reconnects
_COUNT = 200


def _newer(a: str, b: str) -> bool:
    """True when stream id ``a`` comes after ``b``."""
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) > (int(bms), int(bseq or 0))


class StreamHub:
    """Reads the streams of every followed run and fans their events out to the followers."""

    def __init__(self, connection: aioredis.Redis) -> None:
        self._redis = connection
        self._last: dict[str, str] = {}  # run -> id of the last event read for it
        self._followers: dict[str, set[asyncio.Queue[RunEvent | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def join(self, job_id: str, after: str) -> tuple[asyncio.Queue[RunEvent | None], str]:
        """Follow ``job_id`` from event id ``after``; returns the queue and the id the hub reads from.

        When that id is newer than ``after``, the caller fetches the events in between itself.
        """
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue(MAX_QUEUED)
        self._followers.setdefault(job_id, set()).add(queue)
        start = self._last.setdefault(job_id, after)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return queue, start

    def leave(self, job_id: str, queue: asyncio.Queue[RunEvent | None]) -> None:
        """Stop following ``job_id`` with ``queue``."""
        followers = self._followers.get(job_id)
        if followers is None:
            return
        followers.discard(queue)
        if not followers:
            del self._followers[job_id]
            self._last.pop(job_id, None)

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
            streams = {keys.run_events(job_id): last for job_id, last in self._last.items()}
            try:
                answer: Any = await self._redis.xread(streams, count=_COUNT, block=BLOCK_MS)  # type: ignore[arg-type]
            except (TimeoutError, redis.RedisError, OSError) as exc:
                logger.warning("reading run events failed: %s; retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for stream, entries in answer or ():
                self._dispatch(
                    as_text(stream).removeprefix(f"{keys.PREFIX}:run:").removesuffix(":events"), entries
                )

    def _dispatch(self, job_id: str, entries: Any) -> None:
        events = decode_events(entries)
        if entries:
            self._last[job_id] = as_text(entries[-1][0])
        for queue in list(self._followers.get(job_id, ())):
            for event in events:
                if not _offer(queue, event):
                    self.leave(job_id, queue)
                    _offer(queue, None, force=True)
                    break


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
    fetch: Callable[[str, str], Any],
) -> AsyncIterator[RunEvent | None]:
    """The events of ``job_id``: ``history``, then live ones from ``hub``; ``None`` while idle.

    ``fetch(job_id, after)`` (awaitable) reads the events after an id, for the gap between the
    history and where the hub reads from. Ends after the ``done`` event, or when the follower
    falls too far behind (the client then reconnects with its ``Last-Event-ID``).
    """
    last = "0-0"
    for event in history:
        yield event
        last = event.id
        if event.kind == "done":
            return
    queue, start = hub.join(job_id, last)
    try:
        if _newer(start, last):
            for event in await fetch(job_id, last):
                if _newer(event.id, last):
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
            if _newer(live.id, last):
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
