"""Follow-ups in the run pipeline: who counts, what a routed follow-up does, what a run is given.

The worker routes each follow-up when it takes it (``handlers.state.inbox``); this module is
the rest, run by ``handlers.pipeline.run_event`` inside the job:

- ``unwanted``: our own messages, and other bots' unless ``GATEWAY_ALLOW_BOTS=on``, never start
  runs; ``classify`` (the router's question, through ``handlers.registry.followup``) says the
  same of follow-ups.
- ``conclude``: a follow-up claimed without its conversation ends here, with no agent:
  ``read`` (a run read it: closed), ``busy`` (``reject``: the person is told the agent is
  busy), ``stop`` (the run named is stopped, if the sender may stop it there).
- ``carried``: the turns of the runs an ``interrupt`` follow-up replaced, for its run's history.
- ``bind_ask``: ``run.ask`` posts through the platform's ``say``, once per question; while the
  run waits for the answer, ``keys.asking`` tells the router to hand the next follow-up to it
  whatever ``GATEWAY_FOLLOWUPS`` says (an answer never interrupts, queues or is refused).
- ``request_stop`` / ``stopped_by``: the cancellation flag names who stopped the run, so the
  platform can say so where the run was working.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import as_text

from gateway.types import Envelope
from handlers.agent import Event, Run, Turn
from handlers.config import FollowUpSettings
from handlers.messages import FollowUp, Message
from handlers.state import keys, runs
from handlers.state.inbox import Inbox

if TYPE_CHECKING:
    from handlers.pipeline import WorkerPlatform

__all__ = [
    "ALONE",
    "BUSY",
    "NOT_ALLOWED",
    "OPERATOR_FLAGS",
    "anyone_may_stop",
    "bind_ask",
    "carried",
    "cannot_say",
    "classify",
    "conclude",
    "no_bots",
    "no_followups",
    "request_stop",
    "state_of",
    "stopped_by",
    "unwanted",
]

ALONE = frozenset({"read", "stop", "busy"})
"""Follow-up states whose job runs no agent (``conclude`` ends it)."""
BUSY = (
    "I am still working on an earlier request here, so I did not take this one on. "
    "Wait for my answer and ask again, or {hint} to stop me."
)
NOT_ALLOWED = "Only people who can write to this repository can stop a run here."
OPERATOR_FLAGS = frozenset({"1", "api"})
"""Cancellation flag values set by an operator (``gateway runs cancel``, the runs API): no name."""
_MAX_CARRIED = 10


def no_followups(envelope: Envelope, stop_word: str) -> FollowUp | None:
    """The ``followup`` of platforms whose deliveries never continue a conversation (Stripe)."""
    return None


def no_bots(event: Event) -> bool:
    """The ``is_bot`` of platforms whose events never come from a bot."""
    return False


async def cannot_say(event: Event, text: str, key: str, run: Run) -> bool:
    """The ``say`` of platforms with no conversation to post in: nothing is posted."""
    return False


async def anyone_may_stop(event: Event, run: Run) -> bool:
    """The ``may_stop`` of platforms where whoever is in the conversation may stop its run."""
    return True


def unwanted(platform: WorkerPlatform, event: Event, settings: FollowUpSettings) -> bool:
    """Never worth a run nor a follow-up: ``is_ignored`` (our own posts, edits), or a bot's
    message unless ``GATEWAY_ALLOW_BOTS=on``."""
    return platform.is_ignored(event) or (platform.is_bot(event) and not settings.allow_bots)


def classify(platform: WorkerPlatform, envelope: Envelope, settings: FollowUpSettings) -> FollowUp | None:
    """The follow-up ``envelope`` is on ``platform``, or ``None`` (not one, or unwanted)."""
    followup = platform.followup(envelope, settings.stop_word)
    if followup is None or unwanted(platform, platform.to_event(envelope), settings):
        return None
    return followup


async def state_of(run: Run) -> tuple[str, str] | None:
    """``(state, run)`` of this job as a follow-up (``handlers.state.inbox``), or ``None``."""
    return await asyncio.to_thread(Inbox(run.services.redis).state_of, run.job_id)


async def conclude(
    platform: WorkerPlatform, event: Event, run: Run, state: str, other: str
) -> dict[str, Any]:
    """End a follow-up that runs no agent (``state`` in ``ALONE``); returns the job's result."""
    if state == "read":
        return {"status": "read", "note": f"read by run {other}, which was working on its conversation"}
    if state == "busy":
        word = run.services.settings.followups.stop_word
        await platform.say(event, BUSY.format(hint=platform.stop_hint.format(word=word)), "busy", run)
        return {"status": "rejected", "note": f"not run: run {other} was working on its conversation"}
    return await _stop(platform, event, run, other)


async def _stop(platform: WorkerPlatform, event: Event, run: Run, target: str) -> dict[str, Any]:
    who = event.actor or "someone"
    if not target:
        return {"status": "ignored", "note": "stop asked, but no run of the conversation was working"}
    if not await platform.may_stop(event, run):
        await platform.say(event, NOT_ALLOWED, "stop-refused", run)
        return {"status": "ignored", "note": f"{who} may not stop run {target}"}
    if not await asyncio.to_thread(request_stop, run.services.redis, target, who=who):
        return {"status": "ignored", "note": f"run {target} had already ended"}
    run.log.info("stop requested from the conversation", extra={"fields": {"target": target}})
    return {"status": "stopped", "note": f"stopped run {target} for {who}"}


def request_stop(connection: redis.Redis, job_id: str, *, who: str) -> bool:
    """Ask run ``job_id`` to stop, naming ``who``; False if it already ended."""
    status = runs.get_run(connection, job_id)
    if status is not None and status.get("status") in runs.TERMINAL:
        return False
    with connection.pipeline() as pipe:
        pipe.set(keys.cancel(job_id), who, ex=runs.retention())
        pipe.publish(keys.CANCEL_CHANNEL, job_id)
        pipe.execute()
    return True


async def stopped_by(run: Run) -> str | None:
    """Who asked this run to stop (``<@U123>``, ``octocat``, "a newer message"); ``None`` when
    an operator did or nobody is known."""
    flag = await asyncio.to_thread(run.services.redis.get, keys.cancel(run.job_id))
    text = as_text(flag) if flag else None
    return None if text is None or text in OPERATOR_FLAGS else text


def bind_ask(platform: WorkerPlatform, event: Event, run: Run) -> None:
    """Make ``run.ask`` post through ``platform.say`` and wait for the next follow-up; a rerun
    asking the same question posts nothing."""
    connection, flag = run.services.redis, keys.asking(run.job_id)

    async def ask(question: str, within: float) -> Message | None:
        key = "ask-" + hashlib.sha256(question.encode()).hexdigest()[:12]
        seconds = max(1, math.ceil(min(max(0.0, within), run.remaining)) + 5)
        await asyncio.to_thread(connection.set, flag, "1", ex=seconds)
        try:
            if not await platform.say(event, question, key, run):
                run.log.info("cannot ask: nowhere to post in this conversation")
                return None
            return await run.next_message(within)
        finally:
            await asyncio.to_thread(connection.delete, flag)

    run.can_ask(ask)


async def carried(platform: WorkerPlatform, run: Run, interrupted: str) -> list[Turn]:
    """The turns of the run ``interrupted`` (and of those it replaced in turn), oldest first:
    what each was asked and the follow-ups it had read."""
    return await asyncio.to_thread(_carried, platform, run.services.redis, interrupted)


def _carried(platform: WorkerPlatform, connection: redis.Redis, job_id: str) -> list[Turn]:
    inbox, chain, at = Inbox(connection), [], runs.utcnow()  # turns are dated when recorded
    for _ in range(_MAX_CARRIED):
        envelope = _envelope(connection, job_id)
        if envelope is None:
            break
        event = platform.to_event(envelope)  # type: ignore[arg-type]
        asked = event.text or event.title or event.name
        read = [Turn("user", m.text, at, m.delivery_id) for m in inbox.load(job_id, 0)]
        chain.append([Turn("user", asked, at, event.delivery_id), *read])
        state = inbox.state_of(job_id)
        if state is None or state[0] != "interrupt" or not state[1]:
            break
        job_id = state[1]
    return [turn for turns in reversed(chain) for turn in turns]


def _envelope(connection: redis.Redis, job_id: str) -> Mapping[str, Any] | None:
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        envelope = job.args[0] if job.args else None
    except (NoSuchJobError, ValueError, TypeError):
        return None
    return envelope if isinstance(envelope, dict) else None
