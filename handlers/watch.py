"""``gateway runs list`` and ``gateway runs watch ID``: the runs, and one run followed in the terminal.

``watch`` prints the run's events as they happen (its history first), until the run ends; the
exit code says how it ended: 0 succeeded, 1 failed, timed out or cancelled (or the wait ran out).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import redis

from gateway import keys, runs

__all__ = ["EXIT_ENDED_BADLY", "EXIT_SUCCEEDED", "describe", "list_runs", "watch"]

EXIT_SUCCEEDED, EXIT_ENDED_BADLY = 0, 1
_BLOCK_MS = 2000


def list_runs(
    connection: redis.Redis,
    *,
    limit: int,
    status: str | None,
    platform: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the newest runs, one line each: id, status, platform, event, queued at."""
    page = runs.list_runs(connection, limit=limit, status=status, platform=platform)
    for run in page.runs:
        print(
            f"{run['run_id']}\t{run['status']}\t{run['platform']}\t{run.get('event') or '-'}\t"
            f"{run.get('created_at') or '-'}",
            file=out,
        )
    print(f"{len(page.runs)} run(s) shown", file=sys.stderr)
    return EXIT_SUCCEEDED


def watch(connection: redis.Redis, job_id: str, *, timeout: float, out: TextIO = sys.stdout) -> int:
    """Print ``job_id``'s events until its ``done`` event (or ``timeout`` seconds); the exit code by outcome.

    Raises ``LookupError`` for an unknown run.
    """
    events = runs.read_events(connection, job_id)
    if not events:
        raise LookupError(job_id)
    deadline = time.monotonic() + timeout
    last = "0-0"
    while True:
        for event in events:
            print(describe(event), file=out, flush=True)
            last = event.id
            if event.kind == "done":
                return EXIT_SUCCEEDED if event.data.get("status") == "succeeded" else EXIT_ENDED_BADLY
        if time.monotonic() >= deadline:
            print(f"{job_id}: still not ended after {timeout:g}s", file=sys.stderr)
            return EXIT_ENDED_BADLY
        answer: Any = connection.xread({keys.run_events(job_id): last}, block=_BLOCK_MS)
        events = runs.decode_events(answer[0][1]) if answer else []


def describe(event: runs.RunEvent) -> str:
    """One line for ``event``: when, what, and its words."""
    data = event.data
    at = str(data.get("at", ""))[11:19] or "--:--:--"
    if event.kind == "status":
        detail = data.get("error") or data.get("note") or ""
        return f"[{at}] {data.get('status')}" + (f": {detail}" if detail else "")
    if event.kind == "progress":
        return f"[{at}] … {data.get('text', '')}"
    if event.kind == "message":
        return f"[{at}] follow-up from {data.get('actor') or 'someone'}: {data.get('text', '')}"
    if event.kind == "reply":
        posted = "posted" if data.get("posted") else data.get("note") or "not posted"
        return f"[{at}] reply ({posted}):\n{data.get('shown') or data.get('text', '')}"
    return f"[{at}] ended: {data.get('status')}"
