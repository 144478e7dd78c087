"""What ``bench/worker.py`` runs: an async agent for the gateway worker, a sync job for stock RQ."""

from __future__ import annotations

import asyncio
import time

from handlers.agent import Event, Reply, Run


async def sleeper(event: Event, run: Run) -> Reply:
    """Await ``payload["bench_sleep"]`` seconds, like an agent waiting on an LLM."""
    await asyncio.sleep(float(event.payload.get("bench_sleep", 30)))
    return Reply(text="slept")


def sleep_job(seconds: float) -> str:
    """The stock-RQ equivalent: a synchronous job that sleeps (one forked horse per job)."""
    time.sleep(seconds)
    return "slept"
