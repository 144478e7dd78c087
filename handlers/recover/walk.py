"""One source's part of a sweep: plan what to walk from its checkpoint, walk it, keep the checkpoint.

The checkpoint (``keys.recover_state``, one set of fields per source) holds the start of the last
sweep that walked down from the newest entry (``swept_until``) and, for a walk that stopped part
way, the ``cursor`` it stopped at and the ``floor`` it still had to reach. A sweep walks from the
newest entry down to ``swept_until - OVERLAP``, then from the cursor down to the floor. Progress
is saved after every page, so a sweep that dies loses at most the page it was on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rq.utils import as_text

from gateway.queue import to_job_id
from handlers.errors import HandlerError, PermanentError, TransientError
from handlers.logs import bind
from handlers.recover.types import Found, Missed, Report, Source, SourceReport
from handlers.retry import describe
from handlers.services import Services
from handlers.state import keys, runs

__all__ = ["FIRST_LOOKBACK", "OVERLAP", "Checkpoint", "Walk"]

T = TypeVar("T")

logger = logging.getLogger("handlers.recover")

FIRST_LOOKBACK = 24 * 3600
OVERLAP = 300  # seconds re-read below the last sweep's start: lists are not instantly complete
_MAX_ERRORS_KEPT = 20


@dataclass
class Checkpoint:
    """How far the sweeps of one source got (see the module docstring)."""

    swept_until: float | None = None
    cursor: str | None = None
    floor: float | None = None

    def lowest(self) -> float | None:
        """The oldest time the stored state still has to walk to; ``None`` when nothing is stored."""
        if self.cursor is not None:
            return self.floor
        return None if self.swept_until is None else self.swept_until - OVERLAP


@dataclass(frozen=True)
class _Segment:
    """A stretch of the list to walk: from ``cursor`` (``None``: the newest) down to ``floor``."""

    cursor: str | None
    floor: float
    saves_progress: bool


class Walk:
    """One source's part of a sweep: plan the segments, walk them page by page, keep the checkpoint."""

    def __init__(
        self,
        services: Services,
        platform: str,
        source: Source,
        report: Report,
        *,
        on_found: Found | None,
        lost: asyncio.Event | None,
    ) -> None:
        self.services, self.platform, self.source = services, platform, source
        self.result = SourceReport(source.name)
        report.sources.append(self.result)
        self.dry_run = report.dry_run
        self.on_found = on_found
        self.lost = lost
        self.started = time.time()
        self.log = bind(logger, platform=platform, source=source.name)

    async def run(self, *, since: float | None) -> None:
        """Walk what this sweep must (``since`` seconds back, or from the checkpoint); record how it went."""
        stored = await self._load()
        segments, persist = self._plan(stored, since)
        for number, segment in enumerate(segments):
            if not await self._walk(segment, persist=persist and segment.saves_progress):
                return
            last = number == len(segments) - 1
            if persist and not self.dry_run:
                pending = (
                    Checkpoint(self.started)
                    if last
                    else Checkpoint(self.started, stored.cursor, stored.floor)
                )
                await self._save(pending)
        self.result.complete = True

    def _plan(self, stored: Checkpoint, since: float | None) -> tuple[list[_Segment], bool]:
        """The segments to walk, and whether this walk keeps the checkpoint."""
        oldest = self.started - self.source.retention
        if since is not None:
            floor = max(self.started - since, oldest)
            lowest = stored.lowest()
            return [_Segment(None, floor, True)], lowest is None or floor <= lowest
        if stored.swept_until is None:
            return [_Segment(None, max(self.started - FIRST_LOOKBACK, oldest), True)], True
        top = _Segment(None, max(stored.swept_until - OVERLAP, oldest), stored.cursor is None)
        if stored.cursor is None:
            return [top], True
        return [top, _Segment(stored.cursor, max(stored.floor or oldest, oldest), True)], True

    async def _walk(self, segment: _Segment, *, persist: bool) -> bool:
        """Walk ``segment`` page by page; False when it stopped before its floor."""
        cursor = segment.cursor
        while True:
            if self.lost is not None and self.lost.is_set():
                return self._stop("lost the sweep lock; the next sweep resumes here")
            try:
                page = await self.source.page(cursor, segment.floor)
            except PermanentError as exc:
                if cursor is None or cursor != segment.cursor:
                    return self._stop(f"listing: {describe(exc)}")
                # A saved cursor the platform no longer takes: walk the stretch again from the top.
                self.log.warning(
                    "saved cursor refused; walking from the newest",
                    extra={"fields": {"error": describe(exc)}},
                )
                cursor = None
                continue
            except HandlerError as exc:
                return self._stop(f"listing: {describe(exc)}")
            if not await self._recover(page.missed, segment.floor):
                return False
            done = page.next is None or page.oldest is None or page.oldest < segment.floor
            if persist and not done and not self.dry_run:
                await self._save(Checkpoint(self.started, page.next, segment.floor))
            if done:
                return True
            cursor = page.next

    async def _recover(self, missed: list[Missed], floor: float) -> bool:
        """Bring back the unclaimed deliveries of one page; False when a transient failure stopped it."""
        wanted = [item for item in missed if item.at >= floor]
        claimed = await self._claimed([self._job_id(item) for item in wanted])
        for item, is_claimed in zip(wanted, claimed, strict=True):
            if is_claimed:
                continue
            self.result.found += 1
            try:
                action = await self._bring_back(item)
            except TransientError as exc:
                return self._stop(f"{item.delivery_id}: {describe(exc)}")
            except HandlerError as exc:
                self._error(f"{item.delivery_id}: {describe(exc)}")
                action = f"error: {describe(exc)}"
            if self.on_found is not None:
                self.on_found(item, self.source.name, action)
        return True

    async def _bring_back(self, item: Missed) -> str:
        if self.dry_run:
            return "would bring back"
        if not await self.source.bring_back(item):
            return "claimed meanwhile"
        self.result.requeued += 1
        job_id = self._job_id(item)
        source = f"{self.platform}:{self.source.name}"
        fields = {
            "event": item.event,
            "outcome": "recovered",
            "source": source,
            "recovered_at": runs.utcnow(),
        }
        await self._redis(runs.write, self.services.redis, job_id, **fields)
        self.log.info(
            "delivery recovered",
            extra={
                "fields": {
                    "delivery_id": item.delivery_id,
                    "job_id": job_id,
                    "event": item.event,
                    "outcome": "recovered",
                    "source": source,
                }
            },
        )
        return "recovered"

    def _stop(self, reason: str) -> bool:
        self._error(reason)
        return False

    def _error(self, reason: str) -> None:
        self.log.warning("recovery problem", extra={"fields": {"error": reason}})
        if len(self.result.errors) < _MAX_ERRORS_KEPT:
            self.result.errors.append(reason)

    def _job_id(self, item: Missed) -> str:
        return to_job_id(self.platform, item.delivery_id)

    async def _claimed(self, job_ids: list[str]) -> list[bool]:
        def check() -> list[bool]:
            with self.services.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.exists(keys.claim(job_id))
                return [bool(found) for found in pipe.execute()]

        return await self._redis(check) if job_ids else []

    async def _load(self) -> Checkpoint:
        names = [self._field(name) for name in ("swept_until", "cursor", "floor")]
        raw = await self._redis(self.services.redis.hmget, keys.recover_state(self.platform), names)
        swept, cursor, floor = (as_text(value) if value is not None else None for value in raw)
        return Checkpoint(float(swept) if swept else None, cursor or None, float(floor) if floor else None)

    async def _save(self, checkpoint: Checkpoint) -> None:
        values = {
            "swept_until": checkpoint.swept_until,
            "cursor": checkpoint.cursor,
            "floor": checkpoint.floor,
        }
        key = keys.recover_state(self.platform)

        def write() -> None:
            with self.services.redis.pipeline() as pipe:
                for name, value in values.items():
                    if value is None:
                        pipe.hdel(key, self._field(name))
                    else:
                        pipe.hset(key, self._field(name), str(value))
                pipe.execute()

        await self._redis(write)

    def _field(self, name: str) -> str:
        return f"{self.source.name}|{name}"

    async def _redis(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(function, *args, **kwargs)
