"""The run pipeline: what happens to one delivery between the job starting and its reply landing.

Each platform package (``handlers.slack``, ``handlers.github``, ``handlers.stripe``) describes
itself as a ``WorkerPlatform`` and its job function is ``async def handle(envelope): return await
run_event(PLATFORM, envelope)``. A run goes:

1. ``to_event(envelope) -> Event``; ``is_ignored(event)`` ends events never worth a run (our
   own posts, edits), and so does ``is_bot(event)`` unless ``GATEWAY_ALLOW_BOTS=on``;
   a follow-up that needs no agent (read by a run, a Stop, "busy") ends here
   (``handlers.followups.conclude``);
2. if the delivery's ``ReplyMarker`` says it was already answered (a rerun after a crash), the
   stored reply is committed again and nothing is posted or run; the follow-ups that answer
   read count as read again;
3. ``begin(event, run)``: show that work started (the Slack placeholder) and remember it;
4. ``enrich(event, run) -> Event``: fetch the facts the agent needs (``Event.facts``);
5. the agent runs; its progress goes to ``on_progress(event, text, run)`` through a throttled
   ``ProgressRelay`` (at most one call per ``progress_interval``, latest wins), and the answer
   text it streams (``run.stream``) to ``on_stream(event, delta, run)`` through a
   ``StreamRelay``: the text streamed since the previous call, never empty, in order, never two
   calls at once, at most one per ``stream_interval``; a failed call is logged and the run goes
   on. Before ``deliver``, ``on_timeout``, ``on_cancel`` or ``on_failure`` runs, everything
   streamed has been passed on and the last call awaited; ``run.streamed`` is the whole text,
   and the run record's ``streamed_chars`` its length;
6. ``deliver(event, reply, run)`` posts the reply once; then the delivery is marked answered
   and a ``reply`` event (what was posted, or would have been) joins the run's event stream.
   On timeout ``on_timeout(event, partial, run)`` is called instead, on cancellation
   ``on_cancel(event, run)`` (the platform shows that the run was stopped); when enrichment or
   the agent fails for good (the runtime will not retry it), ``on_failure(event, run)`` is, so
   nobody waits on a "working on it" that will never change.

A run replacing runs it interrupted (``GATEWAY_FOLLOWUPS=interrupt``) gets their words at the
end of ``run.history``; ``run.ask`` posts through ``say``. The turns a success appends to the
session are the event's words, then the follow-ups the agent read, then the answer.

The gateway worker sets the run's context before the job function runs; under a stock ``rq
worker`` ``handlers.standalone`` builds one from the environment instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from gateway import tracing
from gateway.types import Envelope
from handlers import followups, metrics, standalone
from handlers.agent import Event, Reply, Run, Turn
from handlers.errors import RunCancelled, RunTimedOut
from handlers.messages import FollowUp
from handlers.progress import ProgressRelay, StreamRelay
from handlers.recover import Sweep
from handlers.retry import describe
from handlers.runtime.context import RunContext, current, execute_agent
from handlers.services import Services
from handlers.state import runs
from handlers.state.replies import ReplyMarker
from handlers.tools import Tool

__all__ = [
    "SHOWN_REPLY",
    "WorkerPlatform",
    "always_configured",
    "ignore_stream",
    "log_delivery",
    "log_progress",
    "log_timeout",
    "no_begin",
    "no_enrich",
    "never_configured",
    "no_failure_notice",
    "no_notes",
    "no_tools",
    "record_undelivered",
    "run_event",
]


SHOWN_REPLY = 2000
"""Characters of an unposted reply its log line shows."""
_FOLLOWUPS_READ = "followups_read"  # reply marker field: follow-ups the delivered answer had read


def always_configured(services: Services) -> str | None:
    """The ``missing_credentials`` of platforms that need none."""
    return None


async def no_begin(event: Event, run: Run) -> None:
    """The ``begin`` hook of platforms that show nothing before the answer."""


async def no_enrich(event: Event, run: Run) -> Event:
    """The ``enrich`` hook of platforms that fetch nothing before the run."""
    return event


async def no_failure_notice(event: Event, run: Run) -> None:
    """The ``on_failure`` and ``on_cancel`` hook of platforms that showed nothing while the run went on."""


def never_configured(services: Services) -> bool:
    """The ``is_configured`` of platforms that never post anywhere (their replies stay in the record)."""
    return False


def no_tools(event: Event, services: Services) -> list[Tool]:
    """The ``tools`` of platforms that offer the model nothing to read."""
    return []


def no_notes(event: Event) -> list[str]:
    """The ``notes`` of platforms whose event needs no more words than the ``Event`` has."""
    return []


async def log_delivery(event: Event, reply: Reply, run: Run) -> None:
    """Log the reply instead of posting it (the platform's credentials are not set), with its
    text, so ``gateway dev`` shows what would have been posted; the run record keeps it too."""
    shown = reply.text if len(reply.text) <= SHOWN_REPLY else reply.text[: SHOWN_REPLY - 1] + "…"
    run.log.info(
        "reply not posted (the platform's API credentials are not set); it would have said:",
        extra={"fields": {"reply": shown, "reply_chars": len(reply.text), "subject": event.subject}},
    )


async def record_undelivered(run: Run, reason: str) -> None:
    """The reply could not be posted: say why in the run record (``undelivered``), which keeps the
    reply's text too, so ``gateway runs show`` tells the operator."""
    run.log.warning("reply not posted", extra={"fields": {"reason": reason}})
    await asyncio.to_thread(runs.write, run.services.redis, run.job_id, undelivered=reason)


async def log_progress(event: Event, text: str, run: Run) -> None:
    """Log progress instead of forwarding it (the run record keeps the text)."""
    run.log.debug("progress", extra={"fields": {"chars": len(text)}})


async def ignore_stream(event: Event, text: str, run: Run) -> None:
    """The ``on_stream`` hook of platforms that show an answer only whole (the reply carries it all)."""


async def log_timeout(event: Event, partial: tuple[str, ...], run: Run) -> None:
    """Log that the run timed out instead of telling the platform."""
    run.log.warning("run timed out", extra={"fields": {"partial_messages": len(partial)}})


@dataclass(frozen=True)
class WorkerPlatform:
    """What the pipeline, the runtime and the ``llm`` agent ask of one platform (see the module docstring).

    Platforms that show nothing while a run goes on keep the defaults: progress and timeouts
    are logged (the run record keeps them), streamed text is not passed on (the reply has it all).
    ``on_stream(event, delta, run)`` gets streamed answer text as the module docstring says; the
    reply that ``deliver`` gets afterwards is the answer of record, which may differ from
    ``run.streamed`` (an agent may stream words it drops): show the reply, appending its rest when
    it starts with what was streamed, replacing the streamed text otherwise.

    ``session_key(envelope)`` names the conversation a delivery belongs to (runs of one session
    never overlap); ``is_configured(services)`` says whether the platform's credentials are set
    (else the reply is only kept in the record); ``preview(reply)`` is the reply as the platform
    shows it (for the run's ``reply`` event and the console); ``tools(event, services)`` are the read-only
    tools the ``llm`` agent may use on the event; ``prompt`` is what that agent's default system
    prompt says about the platform, and ``notes(event)`` are lines its first message adds about
    the event (Stripe: the object); ``missing_credentials(services)`` names what to set when
    the platform cannot run at all; ``recover`` is its recovery sweep (``handlers.recover``), for
    platforms that can list what they failed to deliver.

    Follow-ups (``handlers.followups``): ``followup(envelope, stop_word)`` says whether a delivery
    continues its conversation (and whether it asks to stop); ``is_bot(event)`` whether a bot sent
    it; ``say(event, text, key, run)`` posts ``text`` into the conversation once per ``key``
    (questions of ``run.ask``, the "busy" notice), False where it cannot; ``may_stop(event, run)``
    whether the sender may stop runs there; ``stop_hint`` tells people how to stop a run
    (``{word}``: the stop word).
    """

    name: str
    session_key: Callable[[Envelope], str]
    to_event: Callable[[Envelope], Event]
    is_ignored: Callable[[Event], bool]
    deliver: Callable[[Event, Reply, Run], Awaitable[None]]
    is_configured: Callable[[Services], bool] = never_configured
    on_progress: Callable[[Event, str, Run], Awaitable[None]] = log_progress
    on_stream: Callable[[Event, str, Run], Awaitable[None]] = ignore_stream
    on_timeout: Callable[[Event, tuple[str, ...], Run], Awaitable[None]] = log_timeout
    begin: Callable[[Event, Run], Awaitable[None]] = no_begin
    enrich: Callable[[Event, Run], Awaitable[Event]] = no_enrich
    on_failure: Callable[[Event, Run], Awaitable[None]] = no_failure_notice
    on_cancel: Callable[[Event, Run], Awaitable[None]] = no_failure_notice
    preview: Callable[[Reply], str] = lambda reply: reply.text  # noqa: E731 - a plain default
    tools: Callable[[Event, Services], list[Tool]] = no_tools
    prompt: str = ""
    notes: Callable[[Event], list[str]] = no_notes
    progress_interval: float = 0.0
    stream_interval: float = 1.0
    missing_credentials: Callable[[Services], str | None] = always_configured
    recover: Sweep | None = None
    followup: Callable[[Envelope, str], FollowUp | None] = followups.no_followups
    is_bot: Callable[[Event], bool] = followups.no_bots
    say: Callable[[Event, str, str, Run], Awaitable[bool]] = followups.cannot_say
    may_stop: Callable[[Event, Run], Awaitable[bool]] = followups.anyone_may_stop
    stop_hint: str = "send `{word}`"


async def run_event(platform: WorkerPlatform, envelope: Envelope) -> dict[str, Any]:
    """Turn ``envelope`` into an event, run the agent on it and deliver the reply once.

    Returns the job's RQ result (JSON-safe). Raises what the agent or a hook raised,
    ``RunTimedOut`` (after telling ``on_timeout``) or ``RunCancelled``; the runtime decides
    what follows.
    """
    context = current() or standalone.context_for(envelope, session_key=platform.session_key)
    event = platform.to_event(envelope)
    run = context.run
    routed = await followups.state_of(run)
    early = await _end_early(platform, context, event, routed)
    if early is not None:
        return early
    interrupted = routed[1] if routed is not None and routed[0] == "interrupt" else ""
    carried = await followups.carried(platform, run, interrupted) if interrupted else []
    run.history = (*run.history, *carried)
    followups.bind_ask(platform, event, run)
    missing = platform.missing_credentials(run.services)
    if missing is not None:
        run.log.warning(f"{missing}: the agent sees only the delivery, nothing is fetched or posted")
    await platform.begin(event, run)
    try:
        event = await platform.enrich(event, run)
        reply = await _run_agent(platform, context, event)
    except RunTimedOut:
        raise
    except RunCancelled:
        await _notify(platform.on_cancel, event, run)
        raise
    except Exception as error:
        if not context.will_retry(error):
            await _notify(platform.on_failure, event, run)
        raise
    try:
        with tracing.span(f"deliver {platform.name}", attributes=_reply_attributes(platform, missing)):
            await platform.deliver(event, reply, run)
    except Exception:
        metrics.count_reply(platform.name, "failed")
        raise
    metrics.count_reply(platform.name, "posted" if missing is None else "logged")
    marker = ReplyMarker.for_run(run)
    await marker.note(**{_FOLLOWUPS_READ: len(run.read_messages)})
    await marker.mark_answered(reply)
    await asyncio.to_thread(_record_reply, platform, run, reply)
    _commit(context, event, reply, carried)
    result: dict[str, Any] = {"status": "succeeded", "reply": reply.text}
    if missing is not None:
        result["note"] = f"{missing}: nothing was fetched for the agent and the reply was not posted"
    if isinstance(reply.data.get("llm"), Mapping):
        # The LLM agent's accounting (model, steps, tokens, tool calls, latency) joins the run record.
        result["accounting"] = dict(reply.data["llm"])
    return result


async def _end_early(
    platform: WorkerPlatform, context: RunContext, event: Event, routed: tuple[str, str] | None
) -> dict[str, Any] | None:
    """The result of a job that runs no agent (ignored, a follow-up that needs none, already
    answered), or ``None`` to go on."""
    run = context.run
    if followups.unwanted(platform, event, run.services.settings.followups):
        run.log.info("event ignored", extra={"fields": {"event": event.name}})
        return {"status": "ignored"}
    if routed is not None and routed[0] in followups.ALONE:
        return await followups.conclude(platform, event, run, *routed)
    marker = ReplyMarker.for_run(run)
    earlier = await marker.answered()
    if earlier is None:
        return None
    run.log.info("reply already delivered by an earlier attempt; not running again")
    run.count_read(int((await marker.load()).get(_FOLLOWUPS_READ) or 0))
    _commit(context, event, earlier)
    return {"status": "succeeded", "reply": earlier.text, "already_delivered": True}


def _reply_attributes(platform: WorkerPlatform, missing: str | None) -> dict[str, tracing.AttributeValue]:
    """The reply span's attributes: where it goes, and whether it is posted or only logged."""
    return {"gateway.platform": platform.name, "gateway.reply.posted": missing is None}


async def _run_agent(platform: WorkerPlatform, context: RunContext, event: Event) -> Reply:
    run = context.run
    relay = ProgressRelay(
        lambda text: platform.on_progress(event, text, run), interval=platform.progress_interval, log=run.log
    )
    context.forward_progress = relay.push
    stream = _stream_relay(platform, event, run)
    context.forward_stream = stream.push if stream is not None else None
    try:
        return await execute_agent(context, event)
    except RunTimedOut as exc:
        await _close_relays(relay, stream)
        await platform.on_timeout(event, exc.partial, run)
        raise
    finally:
        await _close_relays(relay, stream)
        await _record_streamed(run)


def _stream_relay(platform: WorkerPlatform, event: Event, run: Run) -> StreamRelay | None:
    """The relay to the platform's ``on_stream``; none for platforms that ignore streamed text."""
    if platform.on_stream is ignore_stream:
        return None
    return StreamRelay(
        lambda delta: platform.on_stream(event, delta, run), interval=platform.stream_interval, log=run.log
    )


async def _close_relays(progress: ProgressRelay, stream: StreamRelay | None) -> None:
    """Stop progress, and pass on (and await) what was streamed, before the run's ending is shown."""
    await progress.close()
    if stream is not None:
        await stream.close()


async def _record_streamed(run: Run) -> None:
    """Keep how much answer text the run streamed in its record (``streamed_chars``)."""
    chars = len(run.streamed)
    if not chars:
        return
    try:
        await asyncio.to_thread(runs.write, run.services.redis, run.job_id, streamed_chars=chars)
    except redis.RedisError as exc:  # the record is a report; the run's own ending matters more
        run.log.warning("streamed_chars not recorded", extra={"fields": {"error": describe(exc)}})


async def _notify(hook: Callable[[Event, Run], Awaitable[None]], event: Event, run: Run) -> None:
    """Tell the platform how the run ended; a failure to tell never hides the run's own ending."""
    try:
        await hook(event, run)
    except Exception as exc:  # noqa: BLE001 - the run's own ending is what gets recorded and raised
        run.log.warning("could not show how the run ended", extra={"fields": {"error": describe(exc)}})


def _record_reply(platform: WorkerPlatform, run: Run, reply: Reply) -> None:
    """The ``reply`` event: the text as delivered, and whether it reached the platform."""
    posted = platform.is_configured(run.services)
    note = None if posted else "not posted: the platform's API credentials are not set"
    shown = platform.preview(reply)
    runs.add_event(
        run.services.redis, run.job_id, "reply", text=reply.text, shown=shown, posted=posted, note=note
    )


def _commit(context: RunContext, event: Event, reply: Reply, carried: list[Turn] | None = None) -> None:
    context.commit(reply, [*(carried or ()), *_turns(event, reply, context.run)])
    if context.standalone is not None:
        standalone.save(context.standalone, context)


def _turns(event: Event, reply: Reply, run: Run) -> list[Turn]:
    asked = event.text or event.title or f"{event.name} {event.action or ''}".strip()
    at = runs.utcnow()
    read = [Turn("user", message.text, at, message.delivery_id) for message in run.read_messages]
    return [
        Turn("user", asked, at, event.delivery_id),
        *read,
        Turn("assistant", reply.text, at, event.delivery_id),
    ]
