"""A test platform and agents for streamed answers through a real worker (``test_streaming.py``).

The job path ``tests.handlers.streaming_platform.handle`` runs Slack envelopes through the real
pipeline with this platform, whose hooks (``on_stream``, ``deliver``, ``on_timeout``,
``on_cancel``) append JSON lines to the Redis list ``STREAM_LOG``: the hook, its text, and when
it started and ended. The agents read what to stream from the payload's ``test`` object:

    {"stream": ["a", "b"],    # pieces to run.stream, in order
     "every": 0.05,           # seconds between them
     "reply": "text",         # the reply (default: everything streamed)
     "sleep_after": 5.0,      # then sleep (to time out or be cancelled)
     "hook_seconds": 0.3,     # each on_stream call takes this long
     "fail": [0]}             # on_stream calls (0-based) that raise
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from gateway.types import Envelope
from handlers.agent import Event, Reply, Run
from handlers.errors import TransientError
from handlers.pipeline import WorkerPlatform, run_event
from handlers.slack.payload import session_key, to_event

STREAM_LOG = "test:stream"
INTERVAL = 0.2


def _script(event: Event) -> dict[str, Any]:
    return dict(event.payload.get("test") or {})


def _log(run: Run, hook: str, text: str, started: float, **extra: Any) -> None:
    line = {"hook": hook, "text": text, "started": started, "ended": time.time(), **extra}
    run.services.redis.rpush(STREAM_LOG, json.dumps(line))


async def _on_stream(event: Event, delta: str, run: Run) -> None:
    started, script = time.time(), _script(event)
    calls = await asyncio.to_thread(run.services.redis.incr, "test:stream:calls")
    await asyncio.sleep(float(script.get("hook_seconds", 0)))
    failed = calls - 1 in script.get("fail", [])
    await asyncio.to_thread(_log, run, "on_stream", delta, started, failed=failed)
    if failed:
        raise TransientError("the platform refused the stream")


async def _deliver(event: Event, reply: Reply, run: Run) -> None:
    await asyncio.to_thread(_log, run, "deliver", reply.text, time.time(), streamed=run.streamed)


async def _on_timeout(event: Event, partial: tuple[str, ...], run: Run) -> None:
    await asyncio.to_thread(_log, run, "on_timeout", "", time.time(), streamed=run.streamed)


async def _on_cancel(event: Event, run: Run) -> None:
    await asyncio.to_thread(_log, run, "on_cancel", "", time.time(), streamed=run.streamed)


PLATFORM = WorkerPlatform(
    name="slack",
    session_key=session_key,
    to_event=to_event,
    is_ignored=lambda event: False,
    deliver=_deliver,
    on_stream=_on_stream,
    on_timeout=_on_timeout,
    on_cancel=_on_cancel,
    stream_interval=INTERVAL,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function: the real pipeline with ``PLATFORM``."""
    return await run_event(PLATFORM, envelope)


async def streaming(event: Event, run: Run) -> Reply:
    """Stream the script's pieces (async), then reply."""
    script = _script(event)
    for piece in script.get("stream", []):
        run.stream(piece)
        await asyncio.sleep(float(script.get("every", 0)))
    await asyncio.sleep(float(script.get("sleep_after", 0)))
    return Reply(text=script.get("reply", run.streamed))


def streaming_sync(event: Event, run: Run) -> Reply:
    """The same from a plain function (the runtime runs it in a thread)."""
    script = _script(event)
    for piece in script.get("stream", []):
        run.stream(piece)
        time.sleep(float(script.get("every", 0)))
    ends = time.time() + float(script.get("sleep_after", 0))
    while time.time() < ends and not run.cancelled:
        time.sleep(0.02)
    return Reply(text=script.get("reply", run.streamed))
