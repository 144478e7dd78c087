"""Posting a Slack answer once: placeholder, throttled progress edits, the final edit.

Where each delivery is answered is ``handlers.slack.payload.target_of``: mentions and direct
messages in their thread, block actions in the thread of the message holding the button, slash
commands in their channel or through their ``response_url`` when the bot cannot post there.

Exactly once (``handlers.state.replies``): the placeholder's ``ts`` is stored in Redis right after
``chat.postMessage`` and before the agent runs; progress and the answer are ``chat.update`` of
that message, so a rerun edits the same message. Placeholders carry the job id as message
metadata: a rerun with no stored ``ts`` (a crash between posting and storing it, or a 5xx whose
post may have landed) first looks for it in the thread. A top-level placeholder (slash command)
cannot be looked up that way; that window is documented in docs/replies.md.

While the run works, the placeholder and its progress edits carry a Stop button
(``handlers.slack.conversation``); the answer, a failure, a timeout or "Stopped by ..." replace
it (a text-only ``chat.update`` drops a message's blocks).

Without ``SLACK_BOT_TOKEN`` nothing is posted: the reply is logged and kept in the run record
(as ``gateway dev`` runs with no tokens).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from handlers import clients, followups
from handlers.agent import Event, Reply, Run
from handlers.errors import PermanentError
from handlers.payload import as_dict
from handlers.pipeline import log_delivery, log_timeout
from handlers.retry import describe
from handlers.slack.client import call, is_configured, respond, web_client
from handlers.slack.conversation import working_blocks
from handlers.slack.format import clip, to_mrkdwn
from handlers.slack.payload import Target, target_of
from handlers.state.replies import ReplyMarker

__all__ = [
    "FAILED",
    "METADATA_TYPE",
    "PLACEHOLDER",
    "PROGRESS_INTERVAL",
    "STOPPED",
    "STOPPED_BY",
    "begin",
    "deliver",
    "on_cancel",
    "on_failure",
    "on_progress",
    "on_timeout",
    "preview",
]

PLACEHOLDER = ":hourglass_flowing_sand: Working on it…"
FAILED = (
    ":x: Sorry, this failed and will not be retried."
    " An operator can look it up: `gateway runs show {job_id}`."
)
STOPPED = ":octagonal_sign: Stopped before it finished."
STOPPED_BY = ":octagonal_sign: Stopped by {who} before it finished."
METADATA_TYPE = "gateway_reply"
# chat.update is Tier 3 (~50/min per workspace): at most one progress edit per message per 1.5 s.
PROGRESS_INTERVAL = 1.5
_CANNOT_POST = frozenset({"channel_not_found", "not_in_channel", "is_archived", "restricted_action"})
_SLACK_RESPONSE_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


async def begin(event: Event, run: Run) -> None:
    """Post the placeholder (or find the one an earlier attempt posted) and store its ``ts``."""
    target = target_of(event)
    if target is None or not target.channel or not is_configured(run.services):
        return
    marker = ReplyMarker.for_run(run)
    if (await marker.load()).get("slack_ts"):
        return  # an earlier attempt posted it: progress and the answer edit that message
    ts = await _find_posted(target, run) if run.attempt > 1 else None
    try:
        ts = ts or await _post_placeholder(target, run)
    except PermanentError as exc:
        if target.response_url and any(code in str(exc) for code in _CANNOT_POST):
            run.log.info("cannot post in the channel; answering through response_url")
            return
        raise
    await marker.note(slack_channel=target.channel, slack_ts=ts)


async def on_progress(event: Event, text: str, run: Run) -> None:
    """Edit the placeholder to show ``text`` (one try: the relay throttles and drops)."""
    await _edit_placeholder(
        event, f":hourglass_flowing_sand: {to_mrkdwn(text)}", run, working=True, policy=clients.NO_RETRY
    )


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Replace the placeholder with the answer (or answer through ``response_url``)."""
    if not is_configured(run.services):
        return await log_delivery(event, reply, run)
    target = target_of(event)
    if target is None:
        run.log.info("nowhere to answer this Slack delivery; reply kept in the run record")
        return
    await _answer(target, reply.text, run, blocks=reply.data.get("slack_blocks"))


async def on_timeout(event: Event, partial: tuple[str, ...], run: Run) -> None:
    """Tell the user the run ran out of time, with the last progress it reported."""
    if not is_configured(run.services):
        return await log_timeout(event, partial, run)
    target = target_of(event)
    if target is None:
        return
    last = f" Last step: {partial[-1]}" if partial else ""
    await _answer(target, f":warning: Sorry, this took too long and was stopped.{last}", run)


async def on_failure(event: Event, run: Run) -> None:
    """Replace the placeholder with a note that the run failed and will not be retried.

    Only a placeholder is edited: a ``response_url`` answer would count as the reply, and an
    operator's ``gateway failed retry`` must still be able to post the real one. The reason
    stays in the run record, for the operator: it may name internals the channel should not see.
    """
    if is_configured(run.services):
        await _edit_placeholder(event, to_mrkdwn(FAILED.format(job_id=run.job_id)), run, deadline=_late(run))


def preview(reply: Reply) -> str:
    """The answer's text as it is posted (Slack mrkdwn)."""
    return to_mrkdwn(reply.text)


async def on_cancel(event: Event, run: Run) -> None:
    """Replace the placeholder with a note that the run was stopped, and by whom when someone in
    a conversation stopped it (nothing else is posted)."""
    if is_configured(run.services):
        who = await followups.stopped_by(run)
        text = STOPPED_BY.format(who=who) if who else STOPPED
        await _edit_placeholder(event, text, run, deadline=_late(run))


async def _edit_placeholder(
    event: Event, text: str, run: Run, *, working: bool = False, **call_options: Any
) -> None:
    """Show ``text`` (mrkdwn) after the command header in this delivery's placeholder, if one was
    posted; the whole edit is clipped to 3,000 characters. ``working`` keeps the Stop button."""
    record = await ReplyMarker.for_run(run).load()
    if not record.get("slack_ts"):
        return
    header = target.header if (target := target_of(event)) else ""
    shown = clip(header + text, 3000)
    if working:
        call_options["blocks"] = working_blocks(shown, run.job_id)
    await call(
        web_client(run.services).chat_update,
        channel=record["slack_channel"],
        ts=record["slack_ts"],
        text=shown,
        **call_options,
    )


async def _answer(target: Target, text: str, run: Run, *, blocks: Any = None) -> None:
    marker = ReplyMarker.for_run(run)
    record = await marker.load()
    body: dict[str, Any] = {"text": to_mrkdwn(target.header + text)}
    if isinstance(blocks, list) and blocks:
        body["blocks"] = blocks
    if record.get("slack_ts"):
        channel, ts = record["slack_channel"], record["slack_ts"]
        await call(web_client(run.services).chat_update, channel=channel, ts=ts, deadline=_late(run), **body)
    elif record.get("slack_responded"):
        return
    elif target.response_url and _is_slack_url(target.response_url, run.services.settings.slack.api_url):
        body["response_type"] = "in_channel"
        await call(respond, target.response_url, body, deadline=_late(run), idempotent=False)
        await marker.note(slack_responded=1)
    else:
        run.log.warning("no placeholder and no usable response_url; the answer was not posted")


async def _post_placeholder(target: Target, run: Run) -> str:
    response = await call(
        web_client(run.services).chat_postMessage,
        channel=target.channel,
        thread_ts=target.thread_ts,
        text=target.header + PLACEHOLDER,
        blocks=working_blocks(target.header + PLACEHOLDER, run.job_id),
        metadata={"event_type": METADATA_TYPE, "event_payload": {"delivery": run.job_id}},
        deadline=run.deadline,
        idempotent=False,
    )
    return str(response["ts"])


async def _find_posted(target: Target, run: Run) -> str | None:
    """The ``ts`` of this delivery's placeholder in the thread, if an earlier attempt posted it."""
    if not target.thread_ts:
        return None
    try:
        response = await call(
            web_client(run.services).conversations_replies,
            channel=target.channel,
            ts=target.thread_ts,
            include_all_metadata=True,
            limit=200,
            deadline=run.deadline,
        )
    except PermanentError as exc:  # no history scope, thread gone: post a new placeholder
        run.log.info("could not look for an earlier placeholder", extra={"fields": {"error": describe(exc)}})
        return None
    for message in response.get("messages") or []:
        metadata = as_dict(as_dict(message).get("metadata"))
        payload = as_dict(metadata.get("event_payload"))
        if metadata.get("event_type") == METADATA_TYPE and payload.get("delivery") == run.job_id:
            return str(message["ts"])
    return None


def _is_slack_url(url: str, api_url: str) -> bool:
    """Only post to Slack's own response hosts (or the configured API's host, as in tests)."""
    parts, api = urlsplit(url), urlsplit(api_url)
    if parts.scheme == "https" and parts.hostname in _SLACK_RESPONSE_HOSTS:
        return True
    return (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


def _late(run: Run) -> float:
    # The answer may still be posted in the runtime's margin after the agent's deadline.
    return run.deadline + 20.0
