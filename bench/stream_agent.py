"""The stream benchmark's agent: reports progress stamped with the time it called ``run.progress``.

``GATEWAY_AGENT=bench.stream_agent:agent``; the API run's text says how often and how long:
``"every=0.25 for=30"``. Each progress text is ``t=<unix time>``, so a follower of the run's
event stream can tell how long the event took from ``run.progress()`` to it.
"""

from __future__ import annotations

import asyncio
import time

from handlers.agent import Event, Reply, Run


async def agent(event: Event, run: Run) -> Reply:
    """Emit timed progress as the text asks, then answer."""
    settings = dict(part.split("=", 1) for part in (event.text or "").split() if "=" in part)
    every, seconds = float(settings.get("every", 0.25)), float(settings.get("for", 10))
    until = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < until and sent < 100_000:
        run.progress(f"t={time.time():.6f}")
        sent += 1
        await asyncio.sleep(every)
    return Reply(text=f"sent {sent} progress events")
