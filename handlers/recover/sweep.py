"""Running a sweep: the platform's lock, the record of its outcome, and the workers' timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import redis
from rq.utils import as_text

from gateway.recovery import COUNTS
from handlers import alerts, metrics
from handlers.errors import HandlerError, UsageError
from handlers.logs import bind
from handlers.recover.types import Found, Report, SourceReport, Sweep
from handlers.recover.walk import Walk
from handlers.retry import describe
from handlers.services import Services
from handlers.state import keys, runs

__all__ = ["LOCK_TTL", "parse_duration", "sweep", "sweep_due"]

logger = logging.getLogger("handlers.recover")

LOCK_TTL = 60.0
_LOCK_RENEW = 15.0

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``3d`` as seconds; ``UsageError`` for anything else."""
    matched = _DURATION.match(text.strip())
    if matched is None or int(matched[1]) == 0:
        raise UsageError(f"--since: {text!r} is not a duration such as 90s, 30m, 6h or 3d")
    return float(int(matched[1]) * _UNITS[matched[2]])


async def sweep_due(
    services: Services, sweeps: Sequence[Sweep], *, interval: float, owner: str
) -> list[Report]:
    """Sweep each platform whose last sweep started ``interval`` or more seconds ago (the workers' timer)."""
    reports = []
    for platform in sweeps:
        if platform.unavailable(services) is None and await _is_due(services, platform.platform, interval):
            reports.append(await sweep(services, platform, owner=owner, due_after=interval))
    return reports


async def sweep(
    services: Services,
    platform: Sweep,
    *,
    owner: str,
    since: float | None = None,
    dry_run: bool = False,
    due_after: float | None = None,
    on_found: Found | None = None,
) -> Report:
    """Sweep ``platform`` once under its lock (a dry run takes no lock and changes nothing).

    ``since`` (seconds) sets how far back to look instead of the checkpoint; ``due_after`` makes
    the sweep skip when another one started less than that many seconds ago (checked under the
    lock); ``on_found`` hears of each missed delivery.
    """
    report = Report(platform.platform, dry_run=dry_run)
    problem = platform.unavailable(services)
    if problem is not None:
        report.skipped = problem
        return report
    if dry_run:
        return await _sweep_sources(services, platform, report, since=since, on_found=on_found, lost=None)
    async with _locked(services, platform.platform, owner) as lost:
        if lost is None:
            holder = await _holder(services, platform.platform)
            report.skipped = f"another sweep of {platform.platform} is running ({holder})"
        elif due_after is not None and not await _is_due(services, platform.platform, due_after):
            report.skipped = "swept recently"
        else:
            await _record_start(services, platform.platform, owner)
            try:
                await _sweep_sources(services, platform, report, since=since, on_found=on_found, lost=lost)
            except Exception as exc:  # Redis gone mid-sweep, or a bug: the record says so, then raise
                report.sources.append(SourceReport("sweep", errors=[describe(exc)]))
                raise
            finally:
                with contextlib.suppress(redis.RedisError):
                    await _record_end(services, report, owner)
            await _announce(services, report)
    return report


async def _announce(services: Services, report: Report) -> None:
    """Count what the sweep queued, and raise an alert when it found missed deliveries."""
    metrics.count_recovered(report.platform, report.requeued)
    if report.found:
        with contextlib.suppress(redis.RedisError):
            await asyncio.to_thread(
                alerts.recovery_found, services.redis, report.platform, report.found, report.requeued
            )


async def _holder(services: Services, platform: str) -> str:
    """Who holds the platform's sweep lock (a worker's name, or ``cli``)."""
    raw = await asyncio.to_thread(services.redis.get, keys.recover_lock(platform))
    return as_text(raw).partition("|")[0] if raw else "it just ended"


async def _sweep_sources(
    services: Services,
    platform: Sweep,
    report: Report,
    *,
    since: float | None,
    on_found: Found | None,
    lost: asyncio.Event | None,
) -> Report:
    try:
        async with platform.open(services) as sources:
            for source in sources:
                walk = Walk(services, platform.platform, source, report, on_found=on_found, lost=lost)
                await walk.run(since=since)
    except HandlerError as exc:  # the sources could not even be opened (credentials, settings)
        report.sources.append(SourceReport("setup", errors=[describe(exc)]))
    log = bind(logger, platform=platform.platform)
    log.info(
        "recovery sweep ended",
        extra={
            "fields": {
                "found": report.found,
                "requeued": report.requeued,
                "errors": len(report.errors),
                "complete": report.complete,
                "dry_run": report.dry_run,
            }
        },
    )
    return report


@asynccontextmanager
async def _locked(services: Services, platform: str, owner: str) -> AsyncIterator[asyncio.Event | None]:
    """Hold the platform's sweep lock for the block: yields an event set if the lock is lost,
    or ``None`` when another sweep holds it."""
    key, token = keys.recover_lock(platform), f"{owner}|{uuid.uuid4().hex}"
    connection = services.redis
    taken = await asyncio.to_thread(connection.set, key, token, nx=True, px=int(LOCK_TTL * 1000))
    if not taken:
        yield None
        return
    lost = asyncio.Event()
    keeper = asyncio.create_task(_keep(connection, key, token, lost))
    try:
        yield lost
    finally:
        keeper.cancel()
        await asyncio.to_thread(connection.register_script(_RELEASE), keys=[key], args=[token])


async def _keep(connection: redis.Redis, key: str, token: str, lost: asyncio.Event) -> None:
    renew = connection.register_script(_RENEW)
    while True:
        await asyncio.sleep(_LOCK_RENEW)
        try:
            kept = await asyncio.to_thread(renew, keys=[key], args=[token, int(LOCK_TTL * 1000)])
        except redis.RedisError:
            continue  # the TTL leaves three more tries before the lock can lapse
        if not kept:
            lost.set()
            return


async def _is_due(services: Services, platform: str, interval: float) -> bool:
    started = await asyncio.to_thread(services.redis.hget, keys.last_sweep(platform), "started_at")
    if started is None:
        return True
    return time.time() - datetime.fromisoformat(as_text(started)).timestamp() >= interval


async def _record_start(services: Services, platform: str, owner: str) -> None:
    record = {"state": "running", "started_at": runs.utcnow(), "by": owner}
    await _write_record(services, platform, record, clear=("finished_at", *COUNTS, "error", "sources"))


async def _record_end(services: Services, report: Report, owner: str) -> None:
    errors = report.errors
    record: dict[str, Any] = {
        "state": "complete" if report.complete else "incomplete",
        "finished_at": runs.utcnow(),
        "by": owner,
        "found": report.found,
        "requeued": report.requeued,
        "errors": len(errors),
        "sources": ", ".join(source.name for source in report.sources),
    }
    if errors:
        record["error"] = errors[-1][:500]
    await _write_record(services, report.platform, record, clear=() if errors else ("error",))


async def _write_record(
    services: Services, platform: str, record: dict[str, Any], *, clear: Sequence[str]
) -> None:
    key = keys.last_sweep(platform)

    def write() -> None:
        with services.redis.pipeline() as pipe:
            pipe.hset(key, mapping={name: str(value) for name, value in record.items()})
            if clear:
                pipe.hdel(key, *clear)
            pipe.execute()

    await asyncio.to_thread(write)
