"""Exactly-once replies: what was posted for a delivery, remembered in Redis beside the reply.

Each delivery (its job id) has one hash, ``keys.reply(job_id)``, kept at least as long as the
delivery's dedupe claim (``GATEWAY_DEDUPE_TTL``, ≥ 3 days). Platform modules write into it the
moment something exists on the platform (the Slack placeholder's ``ts`` before the agent runs,
the GitHub comment id right after posting) and ``answered`` + the reply text once everything is
delivered. A rerun of the job (a worker died, a retry) reads it and edits or skips instead of
posting again; ``run_event`` does not even run the agent when ``answered`` is set.

Slack's fields: ``slack_channel`` and ``slack_ts`` (the message answers go to: placeholder,
stream or post), ``slack_stream`` (that message is a stream: a rerun stops it and edits it),
``slack_stream_intent`` (noted before ``chat.startStream``: a rerun that finds it without a
``slack_ts`` looks for the stream in the thread), ``slack_stream_at`` (when it started),
``slack_status`` (an assistant thread's status was set), ``slack_response_uses`` and
``slack_responded`` (``response_url``), ``said_<key>`` (``run.ask`` questions, notices).

What Redis cannot cover (a crash between the platform accepting a post and the marker being
written) the platforms cover where they can: GitHub comments carry ``hidden_marker(job_id)`` and
are searched for on a rerun; Slack messages carry the same id as message metadata.

A Redis outage does not fail the run: each read and write waits for Redis (``ride_out``) up to
``OUTAGE_WAIT`` seconds, never past the run's deadline, then raises; the run is then retried
and the rerun finds what this one recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from handlers.agent import Reply, Run
from handlers.state import keys
from handlers.state.outage import ride_out

__all__ = ["ANSWERED", "OUTAGE_WAIT", "ReplyMarker", "hidden_marker", "is_ours"]

T = TypeVar("T")

ANSWERED = "answered"
OUTAGE_WAIT = 60.0
# The runtime gives a run this long after its deadline to deliver (runner.HANDLER_MARGIN is 30).
_DELIVERY_MARGIN = 20.0
_HIDDEN = "<!-- gateway:delivery={} -->"


def hidden_marker(job_id: str) -> str:
    """The HTML comment tying a GitHub comment to its delivery (invisible when rendered)."""
    return _HIDDEN.format(job_id)


def is_ours(text: str | None) -> bool:
    """True when ``text`` carries a delivery marker: something this gateway posted."""
    return bool(text) and _HIDDEN.split("{}")[0] in str(text)


class ReplyMarker:
    """The reply record of one delivery. Every method does its Redis I/O in a thread."""

    def __init__(
        self, connection: redis.Redis, job_id: str, *, ttl: int, deadline: float | None = None
    ) -> None:
        self.connection = connection
        self.job_id = job_id
        self.ttl = ttl
        self.deadline = deadline

    @classmethod
    def for_run(cls, run: Run) -> ReplyMarker:
        """The record of ``run``'s delivery, kept as long as its dedupe claim (``GATEWAY_DEDUPE_TTL``)."""
        deadline = run.deadline + _DELIVERY_MARGIN
        return cls(run.services.redis, run.job_id, ttl=run.services.settings.dedupe_ttl, deadline=deadline)

    async def load(self) -> dict[str, str]:
        """Every field recorded so far (empty on a first run)."""
        raw = await self._redis(self.connection.hgetall, keys.reply(self.job_id))
        return {_text(name): _text(value) for name, value in raw.items()}

    async def note(self, **fields: str | int) -> None:
        """Record ``fields`` (and refresh the TTL) in one transaction."""
        await self._redis(self._write, {name: str(value) for name, value in fields.items()})

    async def answered(self) -> Reply | None:
        """The reply already delivered for this delivery, or ``None``."""
        record = await self.load()
        return Reply(text=record.get("text", "")) if record.get(ANSWERED) else None

    async def mark_answered(self, reply: Reply) -> None:
        """Everything is delivered: a rerun must neither post nor run the agent again."""
        await self.note(**{ANSWERED: "1", "text": reply.text})

    async def _redis(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a thread, waiting out a Redis outage (see the module docstring)."""
        until = time.time() + OUTAGE_WAIT
        if self.deadline is not None:
            until = min(until, self.deadline)
        return await ride_out(
            lambda: asyncio.to_thread(function, *args), what=f"the reply record of {self.job_id}", until=until
        )

    def _write(self, fields: dict[str, str]) -> None:
        key = keys.reply(self.job_id)
        with self.connection.pipeline() as pipe:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, self.ttl)
            pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
