"""Agents for the worker tests, chosen with ``GATEWAY_AGENT=tests.agents:<name>``.

``scripted`` reads what to do from the event payload's ``test`` object, so one worker process
can run differently behaving events:

    {"sleep": 2.0,            # seconds to sleep (cancellable, async)
     "transient": 2,          # raise TransientError on attempts 1..N, then succeed
     "permanent": "why",      # raise PermanentError(why)
     "permanent_attempts": 1, # ... only on attempts 1..N (a later retry succeeds)
     "bug": true,             # raise ValueError (an agent bug: permanent)
     "progress": ["a", "b"],  # progress messages sent first
     "progress_every": 0.5,   # seconds between those progress messages (default: all at once)
     "stream": ["Hel", "lo"], # answer text streamed (run.stream) after the progress ...
     "stream_every": 0.3,     # ... with this many seconds between pieces (default 0.2)
     "poll_cancel": 5.0,      # loop up to N s on run.cancelled, recording when it was seen
     "read": 2,               # after sleeping: await run.next_message up to N times ...
     "read_timeout": 10.0,    # ... waiting up to this long for each (default 10 s)
     "pending": true,         # after sleeping: take run.pending_messages()
     "ask": "which one?",     # after sleeping: run.ask(question, read_timeout)
     "sleep_after": 5.0,      # then sleep this long (cancellable)
     "reply": "text",         # the reply's text (default: what was streamed, else
                              #   "done <delivery id> after N turns")
     "data": {...}}           # the reply's data (Reply.data)

Follow-ups it takes are logged (phase ``message``, with ``text``) and named in the default reply.

Every run appends JSON lines to the Redis list ``test:log`` (start, end, cancel-seen) with the
delivery id, attempt, pid and time, so tests can see overlaps, reruns and ordering.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import redis

from gateway.config import Settings
from handlers.agent import Event, Reply, Run
from handlers.errors import PermanentError, TransientError

LOG_KEY = "test:log"
_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(Settings.from_environ().redis_url)
    return _client


def record(phase: str, event: Event, run: Run, **extra: Any) -> None:
    """Append one line to ``test:log``."""
    line = {
        "phase": phase,
        "delivery_id": event.delivery_id,
        "session": event.session_key,
        "attempt": run.attempt,
        "pid": os.getpid(),
        "time": time.time(),
        **extra,
    }
    _redis().rpush(LOG_KEY, json.dumps(line))


async def scripted(event: Event, run: Run) -> Reply:
    """Behave as the payload's ``test`` object says (see the module docstring)."""
    script: dict[str, Any] = dict(event.payload.get("test") or {})
    record("start", event, run, history=[turn.text for turn in run.history], facts=dict(event.facts))
    for text in script.get("progress", []):
        run.progress(text)
        if script.get("progress_every"):
            await asyncio.sleep(float(script["progress_every"]))
    for piece in script.get("stream", []):
        run.stream(str(piece))
        await asyncio.sleep(float(script.get("stream_every", 0.2)))
    if script.get("poll_cancel"):
        await _poll_cancel(event, run, float(script["poll_cancel"]))
    if script.get("sleep"):
        await asyncio.sleep(float(script["sleep"]))
    read = await _take_messages(script, event, run)
    if script.get("sleep_after"):
        await asyncio.sleep(float(script["sleep_after"]))
    _maybe_fail(script, run)
    record("end", event, run)
    heard = f"; read: {' | '.join(read)}" if read else ""
    default = run.streamed or f"done {event.delivery_id} after {len(run.history)} turns{heard}"
    text = script.get("reply", default)
    return Reply(text=str(text), data=dict(script.get("data") or {}))


async def _take_messages(script: dict[str, Any], event: Event, run: Run) -> list[str]:
    """Follow-ups as the script says (``pending``, ``ask``, ``read``), each logged; their texts."""
    wait = float(script.get("read_timeout", 10.0))
    taken = list(run.pending_messages()) if script.get("pending") else []
    if script.get("ask"):
        answer = await run.ask(str(script["ask"]), wait)
        taken += [answer] if answer is not None else []
    for _ in range(int(script.get("read", 0))):
        message = await run.next_message(timeout=wait)
        if message is None:
            break
        taken.append(message)
    for message in taken:
        record(
            "message", event, run, text=message.text, from_delivery=message.delivery_id, actor=message.actor
        )
    return [message.text for message in taken]


def blocking(event: Event, run: Run) -> Reply:
    """A synchronous agent: sleeps in its thread, polling ``run.cancelled``; with ``pending``, it
    then takes ``run.pending_messages()``."""
    script: dict[str, Any] = dict(event.payload.get("test") or {})
    record("start", event, run)
    until = time.monotonic() + float(script.get("sleep", 0))
    while time.monotonic() < until:
        if run.cancelled:
            record("cancel-seen", event, run)
            return Reply(text="stopped")
        time.sleep(0.05)
    taken = run.pending_messages() if script.get("pending") else []
    for message in taken:
        record("message", event, run, text=message.text, from_delivery=message.delivery_id)
    record("end", event, run)
    return Reply(text=f"sync done {event.delivery_id}; read: {' | '.join(m.text for m in taken)}")


async def _poll_cancel(event: Event, run: Run, limit: float) -> None:
    until = time.monotonic() + limit
    try:
        while time.monotonic() < until and not run.cancelled:  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        record("cancel-seen", event, run, cancelled_flag=run.cancelled)
        raise
    if run.cancelled:
        record("cancel-seen", event, run, cancelled_flag=True)


def _maybe_fail(script: dict[str, Any], run: Run) -> None:
    if run.attempt <= int(script.get("transient", 0)):
        raise TransientError(f"upstream 503 on attempt {run.attempt}")
    if script.get("permanent") and run.attempt <= int(script.get("permanent_attempts", 10**9)):
        raise PermanentError(str(script["permanent"]))
    if script.get("bug"):
        raise ValueError("agent bug: unexpected None")


async def napping(event: Event, run: Run) -> Reply:
    """Sleep ``test.sleep`` seconds and answer, touching no Redis (for Redis outage tests)."""
    script: dict[str, Any] = dict(event.payload.get("test") or {})
    await asyncio.sleep(float(script.get("sleep", 0)))
    return Reply(text=f"done {event.delivery_id}")


not_callable = 42
"""Not an agent: ``load_agent`` must refuse it."""


def wrong_arity(event: Event) -> Reply:
    """Not an agent: takes one argument."""
    return Reply(text="")
