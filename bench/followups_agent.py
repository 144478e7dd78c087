"""The follow-up benchmark's agent: waits for follow-ups and notes when each one reached it.

``GATEWAY_AGENT=bench.followups_agent:agent``. A run notes when it started (hash
``bench:started``, delivery id -> Unix time), then awaits ``run.next_message`` until it heard as
many follow-ups as its text asks (``rounds=N``), noting the moment ``next_message`` returned each
(``bench:heard``, the follow-up's delivery id -> time). Then it waits to be stopped and notes
when the cancellation reached it (``bench:stopped``). The times are taken before the writes.
"""

from __future__ import annotations

import asyncio
import re
import time

from handlers.agent import Event, Reply, Run

_ROUNDS = re.compile(r"rounds=(\d+)")


async def agent(event: Event, run: Run) -> Reply:
    """Hear ``rounds`` follow-ups, then wait (up to 10 minutes) for a Stop."""
    connection = run.services.redis
    await asyncio.to_thread(connection.hset, "bench:started", event.delivery_id, repr(time.time()))
    match = _ROUNDS.search(event.text or "")
    for _ in range(int(match.group(1)) if match else 1):
        message = await run.next_message(timeout=120)
        heard = time.time()
        if message is None:
            break
        await asyncio.to_thread(connection.hset, "bench:heard", message.delivery_id, repr(heard))
    try:
        await asyncio.sleep(600)
    except asyncio.CancelledError:
        connection.hset("bench:stopped", event.delivery_id, repr(time.time()))
        raise
    return Reply(text="never stopped")
