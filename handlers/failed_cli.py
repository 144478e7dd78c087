"""``gateway failed list|show ID|retry ID...|--all``: RQ's failed registry of the queue.

A run lands there when it failed for good (a permanent error, or its retries spent); ``retry``
puts it back in the queue and marks its run record queued again.
"""

from __future__ import annotations

import argparse
import json
import sys

import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from handlers.cli_support import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail, run_command
from handlers.config import WorkerSettings
from handlers.state import runs

__all__ = ["failed_main"]


def failed_main(argv: list[str]) -> int:
    """``gateway failed list|show ID|retry ID...|--all``: RQ's failed registry of the queue."""
    parser = argparse.ArgumentParser(prog="gateway failed", description="Inspect and retry failed runs.")
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="failed jobs, newest first")
    listing.add_argument("--limit", type=int, default=50)
    sub.add_parser("show", help="one failed job with its full reason").add_argument("job_id")
    retry = sub.add_parser("retry", help="requeue failed jobs")
    retry.add_argument("job_ids", nargs="*")
    retry.add_argument("--all", action="store_true", help="requeue every failed job")
    return run_command(parser, argv, _failed)


def _failed(args: argparse.Namespace, settings: WorkerSettings, connection: redis.Redis) -> int:
    failed = FailedJobRegistry(settings.queue_name, connection=connection, serializer=JSONSerializer)
    if args.action == "list":
        return _failed_list(failed, args.limit)
    if args.action == "show":
        return _failed_show(connection, failed, args.job_id)
    return _failed_retry(failed, args.job_ids, every=args.all)


def _failed_list(failed: FailedJobRegistry, limit: int) -> int:
    job_ids = failed.get_job_ids(0, max(0, limit - 1), desc=True)
    jobs = Job.fetch_many(job_ids, connection=failed.connection, serializer=JSONSerializer)
    for job_id, job in zip(job_ids, jobs, strict=True):
        reason = _reason(job).strip().splitlines()[0] if job is not None and _reason(job).strip() else "?"
        ended = job.ended_at.isoformat() if job is not None and job.ended_at else "-"
        print(f"{job_id}\t{ended}\t{reason}")
    print(f"{len(job_ids)} failed job(s) shown", file=sys.stderr)
    return EXIT_OK


def _failed_show(connection: redis.Redis, failed: FailedJobRegistry, job_id: str) -> int:
    if job_id not in failed:
        return fail(f"{job_id} is not in the failed registry of {failed.name}", EXIT_FAILURE)
    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    shown = {
        "job_id": job_id,
        "function": job.func_name,
        "status": job.get_status().value,
        "ended_at": job.ended_at.isoformat() if job.ended_at else None,
        "reason": _reason(job),
        "run": runs.get_run(connection, job_id),
    }
    print(json.dumps(shown, indent=2, ensure_ascii=False, default=str))
    return EXIT_OK


def _failed_retry(failed: FailedJobRegistry, job_ids: list[str], *, every: bool) -> int:
    if every == bool(job_ids):
        return fail("retry: give job ids or --all (not both)", EXIT_USAGE)
    targets = failed.get_job_ids() if every else job_ids
    failures = 0
    for job_id in targets:
        try:
            failed.requeue(job_id)
            runs.write(failed.connection, job_id, status="queued", note="requeued from the failed registry")
            print(f"{job_id}: requeued")
        except (InvalidJobOperation, NoSuchJobError):
            print(f"{job_id}: not in the failed registry", file=sys.stderr)
            failures += 1
    return EXIT_FAILURE if failures else EXIT_OK


def _reason(job: Job) -> str:
    result = job.latest_result()
    return (result.exc_string or "") if result is not None else ""
