"""Streamed answers: ``chat.startStream``, ``chat.appendStream`` and ``chat.stopStream`` of one run.

Slack streams a message into a thread (https://docs.slack.dev/messaging/sending-and-scheduling-messages#text-streaming):
the stream needs ``thread_ts``, and outside direct messages the ``recipient_user_id`` and
``recipient_team_id`` of the person it answers (``place_of`` reads them from the event). Text and
steps go as chunks: ``markdown_text`` chunks for the answer (escaped like every agent text, so a
streamed ``<!channel>`` pings nobody), ``task_update`` chunks for ``run.progress`` steps, shown
together as a plan (``TASK_DISPLAY_MODE``): each new step marks the one before complete.

What this module guarantees, and what ``handlers.slack.reply`` builds on:

- ``start`` notes the intent (``slack_stream_intent``) in the delivery's reply record before
  calling ``chat.startStream`` and the stream's ``ts`` (``slack_ts`` with ``slack_stream``) right
  after it, before any append. A refusal (``channel_type_not_supported``, a missing recipient) or
  a low Tier 2 budget returns ``None``: the caller keeps the placeholder path. A 5xx or a lost
  answer may have started the stream: it raises like a placeholder's post, and the rerun looks for
  the message (``find``).
- Appends are not idempotent, so none is ever retried: one that fails (a 429, a 5xx, the budget
  low) is dropped and leaves a gap; ``stop`` then declines to finish with the remaining text and
  the caller writes the whole answer with ``chat.update`` of the same message (same ``ts``).
- Slack ends streams by itself after a few minutes (``message_not_in_streaming_state``,
  python-slack-sdk issue #1859); no append goes to a stream older than ``STREAM_MAX_AGE``, and
  such a stream is finished by ``chat.update`` too.
- A rerun (the worker died mid-stream) knows nothing of what landed: it stops the old stream
  (ignoring ``message_not_in_streaming_state``) and the caller makes that message the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from handlers import clients
from handlers.agent import Event, Run
from handlers.errors import HandlerError, PermanentError, RateLimited, TransientError
from handlers.payload import as_dict
from handlers.retry import describe
from handlers.slack.client import budget_for, call, web_client
from handlers.slack.format import clip
from handlers.slack.payload import event_thread, team_of
from handlers.slack.thread import ThreadReader
from handlers.state.replies import ReplyMarker

__all__ = [
    "NOT_STREAMING",
    "STREAM_MAX_AGE",
    "TASK_DISPLAY_MODE",
    "Place",
    "append",
    "find",
    "may_start",
    "place_of",
    "start",
    "step",
    "stop",
]

# Slack's streams end after a few undocumented minutes; past this age nothing more is appended
# and the answer is written with chat.update instead (the message keeps its ts).
STREAM_MAX_AGE = 240.0
TASK_DISPLAY_MODE = "plan"
NOT_STREAMING = "message_not_in_streaming_state"
_STREAM_EVENTS = frozenset({"app_mention", "message.im"})
_CHUNK = 12_000  # characters of one markdown_text chunk
_TITLE = 200  # characters of a step's title shown as a task


@dataclass(frozen=True)
class Place:
    """Where a stream can go: a thread, and (outside direct messages) who it answers."""

    channel: str
    thread_ts: str
    recipient_user_id: str | None = None
    recipient_team_id: str | None = None


@dataclass
class _Live:
    """This attempt's stream: what Slack accepted, and whether the stop may carry the rest."""

    started: float
    landed: str = ""
    gap: bool = False  # an append dropped or of unknown outcome
    ended: bool = False  # nothing more goes to this stream (too old, refused, not started)
    steps: int = 0
    step_title: str = ""

    @property
    def too_old(self) -> bool:
        """Past ``STREAM_MAX_AGE``: Slack may end it any moment, so nothing more is appended."""
        return time.time() - self.started > STREAM_MAX_AGE


_LIVE: WeakKeyDictionary[Run, _Live] = WeakKeyDictionary()


def place_of(event: Event, run: Run) -> Place | None:
    """Where ``event``'s answer may stream (``SLACK_STREAM`` on, a mention or direct message with
    its thread and, outside DMs, its sender), or ``None``: the placeholder path."""
    if not run.services.settings.slack.stream or event.meta.get("kind") != "event":
        return None
    channel, thread = event_thread(event.payload)
    if event.name not in _STREAM_EVENTS or not channel or not thread:
        return None
    if str(channel).startswith("D"):
        return Place(str(channel), str(thread))
    inner = as_dict(event.payload.get("event"))
    user = inner.get("user")
    team = inner.get("user_team") or inner.get("team") or team_of(event.payload, event.meta)
    if not isinstance(user, str) or not user or team == "-":
        return None
    return Place(str(channel), str(thread), user, str(team))


def may_start(run: Run) -> bool:
    """False once this attempt started, or failed to start, a stream: never two streams."""
    return run not in _LIVE


async def start(event: Event, run: Run, place: Place, *, text: str = "", first_step: str = "") -> str | None:
    """Start the stream with ``text`` (escaped markdown) and/or a first step; its ``ts``, or
    ``None`` when Slack refused it or its budget is low (see the module docstring)."""
    marker, team, budget = (
        ReplyMarker.for_run(run),
        team_of(event.payload, event.meta),
        budget_for(run.services),
    )
    _LIVE[run] = live = _Live(started=time.time(), ended=True)
    if not await budget.take(team, "chat.startStream", until=None, progress=True):
        run.log.info("not streaming: the workspace's chat.startStream budget is low")
        return None
    await marker.note(slack_stream_intent=1, slack_channel=place.channel)
    chunks = ([_task(1, first_step, "in_progress")] if first_step else []) + _texts(text)
    try:
        response = await call(
            web_client(run.services).chat_startStream,
            channel=place.channel,
            thread_ts=place.thread_ts,
            recipient_user_id=place.recipient_user_id,
            recipient_team_id=place.recipient_team_id,
            task_display_mode=TASK_DISPLAY_MODE,
            chunks=chunks,
            deadline=run.deadline,
            idempotent=False,
            # A 429 is not waited out: the placeholder, on chat.postMessage's own tier, is quicker.
            policy=clients.NO_RETRY,
            pacer=budget.pacer(team, "chat.startStream", taken=True),
        )
    except (PermanentError, RateLimited) as exc:
        run.log.info("Slack refused the stream; posting a placeholder", extra={"fields": {"error": str(exc)}})
        await marker.note(slack_stream_intent="")
        return None
    ts = str(response["ts"])
    await marker.note(slack_ts=ts, slack_stream=1, slack_stream_at=f"{live.started:.3f}")
    live.landed, live.ended, live.steps, live.step_title = text, False, 1 if first_step else 0, first_step
    return ts


async def append(event: Event, run: Run, record: dict[str, str], text: str) -> None:
    """Append ``text`` (escaped markdown) to this attempt's stream: one try, dropped when the
    budget is low or Slack does not take it (the finish then rewrites the whole message)."""
    live = _LIVE.get(run)
    if live is None or live.ended or not text:
        return
    if await _send(event, run, record, live, _texts(text)):
        live.landed += text
    else:
        live.gap = True


async def step(event: Event, run: Run, record: dict[str, str], title: str) -> None:
    """Show a progress step as the stream's next task (the previous one complete)."""
    live = _LIVE.get(run)
    if live is None or live.ended or not title.strip():
        return
    chunks = [_task(live.steps, live.step_title, "complete")] if live.steps else []
    if await _send(event, run, record, live, [*chunks, _task(live.steps + 1, title, "in_progress")]):
        live.steps, live.step_title = live.steps + 1, title


async def stop(
    event: Event,
    run: Run,
    record: dict[str, str],
    answer: str | None,
    *,
    blocks: list[Any],
    metadata: dict[str, Any],
) -> bool:
    """Stop the stream. True when the stop carried ``answer`` (escaped markdown, the whole answer
    of record) with ``blocks`` and ``metadata``; False when the caller must write the answer with
    ``chat.update`` (a gap, another text, a stream too old or no longer streaming, a rerun)."""
    live = _LIVE.pop(run, None)
    rest = _rest(live, answer)
    done = (
        [_task(live.steps, live.step_title, "complete")] if live and live.steps and rest is not None else []
    )
    body: dict[str, Any] = {"chunks": [*done, *_texts(rest or "")] or None}
    if rest is not None:
        body.update(blocks=blocks or None, metadata=metadata)
    team = team_of(event.payload, event.meta)
    try:
        await call(
            web_client(run.services).chat_stopStream,
            channel=record["slack_channel"],
            ts=record["slack_ts"],
            deadline=run.deadline + 20.0,
            pacer=budget_for(run.services).pacer(team, "chat.stopStream"),
            **body,
        )
    except PermanentError as exc:  # not streaming any more (expired, a retried stop that landed)
        run.log.info(
            "stream already ended; writing the answer by chat.update", extra={"fields": {"error": str(exc)}}
        )
        return False
    return rest is not None


async def find(event: Event, run: Run, place: Place) -> str | None:
    """The ``ts`` of the stream an earlier attempt started but did not record: the bot's message in
    the thread, since the delivery arrived, that carries no metadata (a stream has none until it
    stops; our other messages all carry theirs)."""
    reader = ThreadReader.since_delivery(event, run, channel=place.channel, thread_ts=place.thread_ts)
    ours, candidates = _bot_users(event), []
    try:
        async for found in reader.messages(deadline=run.deadline):
            if found.get("bot_id") and not found.get("metadata") and str(found.get("ts")) != place.thread_ts:
                candidates.append(found)
    except PermanentError as exc:
        run.log.info("could not look for an earlier stream", extra={"fields": {"error": describe(exc)}})
    # Our bot user's message first; another app's is refused by stop and update (then: a new post).
    candidates.sort(key=lambda found: found.get("user") not in ours)
    return str(candidates[0]["ts"]) if candidates else None


async def _send(
    event: Event, run: Run, record: dict[str, str], live: _Live, chunks: list[dict[str, Any]]
) -> bool:
    """One ``chat.appendStream`` try; False when it did not (certainly) land."""
    if live.too_old:
        run.log.info("stream too old to append to; the answer will be written by chat.update")
        live.ended = True
        return False
    team, budget = team_of(event.payload, event.meta), budget_for(run.services)
    if not await budget.take(team, "chat.appendStream", until=None, progress=True):
        run.log.debug("stream append dropped: the workspace's chat.appendStream budget is low")
        return False
    try:
        await call(
            web_client(run.services).chat_appendStream,
            channel=record["slack_channel"],
            ts=record["slack_ts"],
            chunks=chunks,
            policy=clients.NO_RETRY,
            idempotent=False,
            deadline=run.deadline,
            pacer=budget.pacer(team, "chat.appendStream", taken=True),
        )
    except TransientError as exc:  # a 429 did not land, a 5xx may have: either way, a gap
        run.log.info("stream append dropped", extra={"fields": {"error": describe(exc)}})
        return False
    except HandlerError as exc:
        run.log.info(
            "stream ended; the answer will be written by chat.update", extra={"fields": {"error": str(exc)}}
        )
        live.ended = True
        return False
    return True


def _rest(live: _Live | None, answer: str | None) -> str | None:
    """What the stop must append for the message to read ``answer``, or ``None`` when it cannot."""
    if live is None or answer is None or live.gap or live.ended:
        return None
    if live.too_old or not answer.startswith(live.landed):
        return None
    return answer[len(live.landed) :]


def _texts(text: str) -> list[dict[str, Any]]:
    """``text`` as ``markdown_text`` chunks of at most Slack's 12,000 characters each."""
    return [{"type": "markdown_text", "text": text[at : at + _CHUNK]} for at in range(0, len(text), _CHUNK)]


def _task(number: int, title: str, status: str) -> dict[str, Any]:
    return {"type": "task_update", "id": f"step-{number}", "title": clip(title, _TITLE), "status": status}


def _bot_users(event: Event) -> set[str]:
    """This app's bot user ids, from the delivery's ``authorizations`` (empty when it names none)."""
    found = event.payload.get("authorizations")
    return (
        {str(a.get("user_id")) for a in found if isinstance(a, dict) and a.get("is_bot")}
        if isinstance(found, list)
        else set()
    )
