"""The "thinking" status of an assistant thread: ``assistant.threads.setStatus`` while a run works.

An assistant thread is a direct message with the app in a thread (a ``message.im`` event with a
``thread_ts``; apps with Slack's agent feature get their conversations there). Slack shows the
status under the thread with ``loading_messages`` rotating, clears it when the bot posts in the
thread (or starts a stream there), and drops it by itself after two minutes without a message
(https://docs.slack.dev/reference/methods/assistant.threads.setStatus). So:

- ``show`` at ``begin`` and for each progress step (its last steps as the loading messages);
  progress takes from the workspace's budget only while a reserve is left for answers, like the
  placeholder's progress edits, and is dropped otherwise;
- ``clear`` (``status=""``) when the run fails, is stopped or times out; an answer clears it.

Where Slack refuses the status (a plain DM thread of an app without the agent feature), the
reply falls back to the placeholder or stream of any thread (``handlers.slack.reply``).
"""

from __future__ import annotations

from handlers import clients
from handlers.agent import Event, Run
from handlers.errors import HandlerError
from handlers.payload import as_dict
from handlers.retry import describe
from handlers.slack.client import budget_for, call, web_client
from handlers.slack.format import clip
from handlers.slack.payload import team_of

__all__ = ["LOADING", "MAX_LOADING", "STATUS", "clear", "is_assistant_thread", "show"]

STATUS = "is working on it…"
LOADING = ("Reading your message…", "Working on it…")
MAX_LOADING = 10  # Slack takes at most 10 loading messages
_LOADING_CHARS = 50  # Slack takes loading messages of 1 to 50 characters


def is_assistant_thread(event: Event) -> bool:
    """A direct message with the app, in a thread: where Slack shows an assistant thread's status."""
    inner = as_dict(event.payload.get("event"))
    return event.meta.get("kind") == "event" and event.name == "message.im" and bool(inner.get("thread_ts"))


def _thread_of(event: Event) -> tuple[str, str]:
    """``(channel, thread_ts)`` of an assistant thread (see ``is_assistant_thread``)."""
    inner = as_dict(event.payload.get("event"))
    return str(inner.get("channel") or ""), str(inner.get("thread_ts") or "")


async def show(event: Event, run: Run, steps: tuple[str, ...] = (), *, progress: bool = False) -> bool:
    """Set the thread's status, its loading messages the last ``steps`` (else ``LOADING``).

    One try; ``progress`` calls are dropped when the workspace's budget is low. False when the
    status was not set (refused, dropped, or Slack did not answer).
    """
    channel, thread = _thread_of(event)
    team, budget = team_of(event.payload, event.meta), budget_for(run.services)
    if not await budget.take(team, "assistant.threads.setStatus", until=None, progress=progress):
        run.log.debug("status update dropped: the workspace's setStatus budget is low")
        return False
    loading = [clip(" ".join(step.split()), _LOADING_CHARS) for step in steps[-MAX_LOADING:] if step.strip()]
    try:
        await call(
            web_client(run.services).assistant_threads_setStatus,
            channel_id=channel,
            thread_ts=thread,
            status=STATUS,
            loading_messages=loading or list(LOADING),
            policy=clients.NO_RETRY,
            deadline=run.deadline,
            pacer=budget.pacer(team, "assistant.threads.setStatus", taken=True),
        )
    except HandlerError as exc:
        run.log.info("could not set the thread's status", extra={"fields": {"error": describe(exc)}})
        return False
    return True


async def clear(event: Event, run: Run) -> None:
    """Remove the thread's status (the run ended without an answer); a failure is only logged."""
    channel, thread = _thread_of(event)
    team = team_of(event.payload, event.meta)
    try:
        await call(
            web_client(run.services).assistant_threads_setStatus,
            channel_id=channel,
            thread_ts=thread,
            status="",
            policy=clients.NO_RETRY,
            deadline=run.deadline + 20.0,
            pacer=budget_for(run.services).pacer(team, "assistant.threads.setStatus"),
        )
    except HandlerError as exc:
        run.log.info("could not clear the thread's status", extra={"fields": {"error": describe(exc)}})
