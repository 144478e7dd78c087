"""Posting a Slack answer once: placeholder, throttled progress edits, the final edit.

Where each delivery is answered is ``handlers.slack.payload.target_of``: mentions and direct
messages in their thread, block actions in the thread of the message holding the button, slash
commands in their channel or through their ``response_url`` when the bot cannot post there. What
is sent is ``handlers.slack.render.message``: escaped text, and only the mentions, pings, links
and blocks the reply asks for in ``Reply.data["slack"]``.

Exactly once (``handlers.state.replies``): the placeholder's ``ts`` is stored in Redis right after
``chat.postMessage`` and before the agent runs; progress and the answer are ``chat.update`` of
that message, so a rerun edits the same message. Placeholders carry the job id as message
metadata: a rerun with no stored ``ts`` (a crash between posting and storing it, or a 5xx whose
post may have landed) first looks for it among the thread's messages since the delivery arrived.
A top-level placeholder (slash command) cannot be looked up that way; that window is documented
in docs/replies.md.

Streams and assistant threads (``handlers.slack.stream``, ``handlers.slack.status``): in an
assistant thread the status shows the run's progress as loading messages and the answer streams
from the agent's first ``run.stream`` text (an agent that streams nothing gets its answer
posted). In other threads of mentions and direct messages (``SLACK_STREAM`` on) the stream starts
at ``begin`` instead of the placeholder, its steps as tasks; ``chat.stopStream`` finishes it with
the rest of the answer, its feedback buttons and metadata, or, when what landed is not a prefix of
the answer of record (dropped appends, another final text, mentions, links, blocks, a stream
Slack ended or older than ``stream.STREAM_MAX_AGE``, a rerun), the stream is stopped and its
message becomes the answer by ``chat.update``, or a new post when that message is gone. Where
Slack refuses a stream, the placeholder path below is taken. docs/replies.md has the windows.

Rate limits: every call takes from the workspace's shared budget (``handlers.slack.budget``).
Progress edits are dropped when it runs low; the answer waits for it; a 429 pauses the method for
every worker. A ``response_url`` takes 5 posts within 30 minutes of the command
(https://docs.slack.dev/interactivity/handling-user-interaction): its uses are counted in the
reply record, and past either limit the answer goes in the channel when the bot may post there;
otherwise the run record says why it was not posted.

While the run works, the placeholder and its progress edits carry a Stop button
(``handlers.slack.conversation``); the answer, a failure, a timeout or "Stopped by ..." replace
it (a text-only ``chat.update`` drops a message's blocks). A streaming message carries no blocks
until it stops: there the stop word stops the run. Final answers (not failure, stop or timeout
notes) carry the feedback buttons when ``SLACK_FEEDBACK`` is on (``render.with_feedback``).

Without ``SLACK_BOT_TOKEN`` nothing is posted: the reply is logged and kept in the run record
(as ``gateway dev`` runs with no tokens).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from handlers import clients, followups
from handlers.agent import Event, Reply, Run
from handlers.errors import HandlerError, PermanentError
from handlers.payload import as_dict
from handlers.pipeline import log_delivery, log_timeout, record_undelivered
from handlers.retry import describe
from handlers.slack import status, stream
from handlers.slack.client import budget_for, call, is_configured, respond, web_client
from handlers.slack.conversation import working_blocks
from handlers.slack.format import clip_mrkdwn, to_markdown, to_mrkdwn
from handlers.slack.payload import Target, target_of, team_of
from handlers.slack.render import METADATA_TYPE, Message, markdown, message, metadata, with_feedback
from handlers.slack.thread import ThreadReader
from handlers.state.replies import ReplyMarker

__all__ = [
    "FAILED",
    "METADATA_TYPE",
    "PLACEHOLDER",
    "PROGRESS_INTERVAL",
    "RESPONSE_URL_USES",
    "RESPONSE_URL_WINDOW",
    "STOPPED",
    "STOPPED_BY",
    "STREAM_INTERVAL",
    "WORKING_STEP",
    "begin",
    "deliver",
    "on_cancel",
    "on_failure",
    "on_progress",
    "on_stream",
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
WORKING_STEP = "Working on it"  # a stream's first task, until the agent reports its own steps
# At most one progress edit per message per 1.5 s; the workspace's budget bounds them all together.
PROGRESS_INTERVAL = 1.5
# Streamed text is coalesced and appended at most once a second (chat.appendStream is Tier 4).
STREAM_INTERVAL = 1.0
RESPONSE_URL_USES = 5
RESPONSE_URL_WINDOW = 29 * 60  # Slack's 30 minutes, less a minute for the command's trip to the queue
_CANNOT_POST = frozenset({"channel_not_found", "not_in_channel", "is_archived", "restricted_action"})
_SLACK_RESPONSE_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


async def begin(event: Event, run: Run) -> None:
    """Show that work started and remember where: an assistant thread's status, a stream, or the
    placeholder (or find what an earlier attempt posted) with its ``ts`` stored."""
    target = target_of(event)
    if target is None or not target.channel or not is_configured(run.services):
        return
    marker = ReplyMarker.for_run(run)
    record = await marker.load()
    if record.get("slack_ts") or (run.attempt > 1 and await _adopt(event, target, record, run)):
        return  # an earlier attempt posted it: progress and the answer go to that message
    if status.is_assistant_thread(event) and await status.show(event, run):
        return await marker.note(slack_status=1)  # the stream starts with the first streamed text
    place = stream.place_of(event, run)
    if place is not None and await stream.start(event, run, place, first_step=WORKING_STEP):
        return
    ts = None
    try:
        text = target.header + PLACEHOLDER
        placeholder = {"text": text, "blocks": working_blocks(text, run.job_id)}
        ts = await _post(event, target, placeholder, run, deadline=run.deadline)
    except PermanentError as exc:
        if target.response_url and _cannot_post(exc):
            run.log.info("cannot post in the channel; answering through response_url")
            return
        raise
    await marker.note(slack_channel=target.channel, slack_ts=ts)


async def _adopt(event: Event, target: Target, record: dict[str, str], run: Run) -> bool:
    """On a rerun: find the message an earlier attempt posted but did not record (a placeholder or
    answer by its metadata; a stream it meant to start by being the bot's message without any) and
    record it. True when one was found."""
    marker = ReplyMarker.for_run(run)
    ts = await _find_posted(event, target, run)
    if ts:
        await marker.note(slack_channel=str(target.channel), slack_ts=ts)
        return True
    place = stream.place_of(event, run) if record.get("slack_stream_intent") else None
    ts = await stream.find(event, run, place) if place else None
    if ts:
        await marker.note(slack_channel=str(target.channel), slack_ts=ts, slack_stream=1)
    return bool(ts)


async def on_progress(event: Event, text: str, run: Run) -> None:
    """Show progress ``text``: the stream's next task, an assistant thread's loading messages, or
    an edit of the placeholder keeping its Stop button. One try each, and only while the
    workspace's budget has room for it beside the answers (otherwise this progress is dropped)."""
    record = await ReplyMarker.for_run(run).load()
    if record.get("slack_stream") and record.get("slack_ts"):
        return await stream.step(event, run, record, text)
    if record.get("slack_status") and not record.get("slack_ts"):
        if stream.may_start(run):  # once a stream starts, Slack has cleared the status for good
            await status.show(event, run, run.messages, progress=True)
        return
    if not record.get("slack_ts"):
        return
    team, budget = team_of(event.payload, event.meta), budget_for(run.services)
    if not await budget.take(team, "chat.update", until=None, progress=True):
        run.log.debug("progress edit dropped: the workspace's chat.update budget is low")
        return
    pacer = budget.pacer(team, "chat.update", taken=True)
    shown = _clipped(event, f":hourglass_flowing_sand: {to_mrkdwn(text)}")
    body = {"text": shown, "blocks": working_blocks(shown, run.job_id)}
    await _edit(event, record, body, run, policy=clients.NO_RETRY, pacer=pacer)


async def on_stream(event: Event, text: str, run: Run) -> None:
    """Append streamed answer text (escaped) to the run's stream, starting it in an assistant
    thread; ignored on the placeholder path (the final edit carries the whole answer)."""
    if not is_configured(run.services):
        return
    record = await ReplyMarker.for_run(run).load()
    if record.get("slack_stream") and record.get("slack_ts"):
        return await stream.append(event, run, record, to_markdown(text))
    place = stream.place_of(event, run)
    if record.get("slack_status") and not record.get("slack_ts") and place and stream.may_start(run):
        try:
            await stream.start(event, run, place, text=to_markdown(text))
        except HandlerError as exc:  # may have started: the answer looks for it (``_answer``)
            run.log.info("could not start the stream", extra={"fields": {"error": describe(exc)}})


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Replace the placeholder with the answer (or answer through ``response_url``)."""
    if not is_configured(run.services):
        return await log_delivery(event, reply, run)
    target = target_of(event)
    if target is None:
        run.log.info("nowhere to answer this Slack delivery; reply kept in the run record")
        return
    answer = message(reply, header=target.header)
    if run.services.settings.slack.feedback:
        answer = with_feedback(answer, run.job_id)
    await _answer(event, target, answer, run, streamed=markdown(reply) if not target.header else None)


async def on_timeout(event: Event, partial: tuple[str, ...], run: Run) -> None:
    """Tell the user the run ran out of time, with the last progress it reported."""
    if not is_configured(run.services):
        return await log_timeout(event, partial, run)
    target = target_of(event)
    if target is None:
        return
    last = f" Last step: {partial[-1]}" if partial else ""
    text = to_mrkdwn(f":warning: Sorry, this took too long and was stopped.{last}")
    await _clear_status(event, run)
    await _answer(event, target, Message(target.header + text), run)


async def on_failure(event: Event, run: Run) -> None:
    """Replace the placeholder with a note that the run failed and will not be retried.

    Only a placeholder is edited: a ``response_url`` answer would count as the reply, and an
    operator's ``gateway failed retry`` must still be able to post the real one. The reason
    stays in the run record, for the operator: it may name internals the channel should not see.
    """
    await _note_in_placeholder(event, to_mrkdwn(FAILED.format(job_id=run.job_id)), run)


def preview(reply: Reply) -> str:
    """The answer's text as it is posted (Slack mrkdwn, escaped, with its structured extras)."""
    return message(reply).text


async def on_cancel(event: Event, run: Run) -> None:
    """Replace the placeholder with a note that the run was stopped, and by whom when someone in
    a conversation stopped it (nothing else is posted)."""
    if is_configured(run.services):
        who = await followups.stopped_by(run)
        await _note_in_placeholder(event, STOPPED_BY.format(who=who) if who else STOPPED, run)


async def _note_in_placeholder(event: Event, text: str, run: Run) -> None:
    """Show ``text`` (mrkdwn) after the command header in this delivery's placeholder, if one was
    posted; the whole edit is clipped to 3,000 characters. Sent as text alone, it drops the Stop
    button."""
    if not is_configured(run.services):
        return
    await _clear_status(event, run)
    record = await ReplyMarker.for_run(run).load()
    target = target_of(event)
    if record.get("slack_ts") and record.get("slack_stream"):
        await stream.stop(event, run, record, None, blocks=[], metadata={})
    if record.get("slack_ts"):
        await _edit(event, record, {"text": _clipped(event, text)}, run, deadline=_late(run))
    elif (
        target is not None
        and target.channel
        and (record.get("slack_status") or record.get("slack_stream_intent"))
    ):
        await _post_once(event, target, Message(_clipped(event, text)), run)  # nothing else shows the end


async def _clear_status(event: Event, run: Run) -> None:
    """Clear an assistant thread's status the run set (no answer will clear it)."""
    if (await ReplyMarker.for_run(run).load()).get("slack_status"):
        await status.clear(event, run)


async def _answer(
    event: Event, target: Target, answer: Message, run: Run, *, streamed: str | None = None
) -> None:
    """Deliver ``answer``: finish the stream, edit the placeholder, use the ``response_url``, or
    post it in the thread; ``streamed`` is the answer as a stream shows it (``render.markdown``)."""
    if answer.dropped:
        run.log.info("left out of the Slack answer", extra={"fields": {"dropped": list(answer.dropped)}})
    marker = ReplyMarker.for_run(run)
    record = await marker.load()
    if (
        record.get("slack_stream_intent")
        and not record.get("slack_ts")
        and await _adopt(event, target, record, run)
    ):
        record = await marker.load()
    if record.get("slack_ts") and record.get("slack_stream"):
        await _finish_stream(event, target, record, answer, run, streamed=streamed)
    elif record.get("slack_ts"):
        await _with_blocks_or_text(answer, lambda body: _edit(event, record, body, run, deadline=_late(run)))
    elif record.get("slack_responded"):
        return
    elif target.response_url and _is_slack_url(target.response_url, run.services.settings.slack.api_url):
        await _respond(event, target, answer, run, marker, uses=int(record.get("slack_response_uses") or 0))
    elif target.channel and target.thread_ts:  # an assistant thread whose agent streamed nothing
        await _post_once(event, target, answer, run)
    else:
        await record_undelivered(run, "no placeholder was posted and there is no usable response_url")


async def _finish_stream(
    event: Event, target: Target, record: dict[str, str], answer: Message, run: Run, *, streamed: str | None
) -> None:
    """Stop the stream with the rest of the answer; else make its message the answer by
    ``chat.update`` (same ``ts``), or post the answer when that message is gone."""
    feedback = [block for block in answer.blocks or [] if block.get("type") == "context_actions"]
    if await stream.stop(event, run, record, streamed, blocks=feedback, metadata=metadata(run.job_id)):
        return
    body = {"metadata": metadata(run.job_id)}
    try:
        await _with_blocks_or_text(
            answer, lambda shown: _edit(event, record, {**shown, **body}, run, deadline=_late(run))
        )
    except PermanentError as exc:
        if "message_not_found" not in str(exc) and "cant_update_message" not in str(exc):
            raise
        run.log.info(
            "the streamed message is gone; posting the answer", extra={"fields": {"error": str(exc)}}
        )
        await ReplyMarker.for_run(run).note(slack_ts="", slack_stream="")
        await _post_once(event, target, answer, run)


async def _post_once(event: Event, target: Target, answer: Message, run: Run) -> None:
    """Post ``answer`` (text, and blocks unless Slack refuses them) in the thread and record its
    ``ts``; a rerun finds it by its metadata (``_find_posted``) if the record was not written."""

    async def post(sent: dict[str, Any]) -> None:
        ts = await _post(event, target, sent, run, deadline=_late(run))
        await ReplyMarker.for_run(run).note(slack_channel=str(target.channel), slack_ts=ts, slack_stream="")

    await _with_blocks_or_text(answer, post)


async def _respond(
    event: Event, target: Target, answer: Message, run: Run, marker: ReplyMarker, *, uses: int
) -> None:
    """Answer through ``response_url`` while it is usable, else in the channel, else say why not."""
    spent = _response_url_spent(event, uses)
    if spent:
        return await _post_instead(event, target, answer, run, spent)
    await marker.note(slack_response_uses=uses + 1)  # counted first: a post that may have landed is a use

    async def send(body: dict[str, Any]) -> None:
        assert target.response_url is not None
        await call(respond, target.response_url, {**body, "response_type": "in_channel"},
                   deadline=_late(run), idempotent=False)  # fmt: skip

    try:
        await _with_blocks_or_text(answer, send)
    except PermanentError as exc:  # expired or used up after all (Slack's clock, not ours)
        return await _post_instead(event, target, answer, run, f"Slack refused its response_url ({exc})")
    await marker.note(slack_responded=1)


async def _post_instead(event: Event, target: Target, answer: Message, run: Run, why: str) -> None:
    if not target.channel:
        return await record_undelivered(run, f"{why}, and the command names no channel")
    posted: list[str] = []

    async def post(body: dict[str, Any]) -> None:
        posted.append(await _post(event, target, body, run, deadline=_late(run)))

    try:
        await _with_blocks_or_text(answer, post)
    except PermanentError as exc:
        if not _cannot_post(exc):
            raise
        return await record_undelivered(run, f"{why}, and the bot cannot post in {target.channel}: {exc}")
    await ReplyMarker.for_run(run).note(slack_channel=target.channel, slack_ts=posted[-1], slack_responded=1)


def _response_url_spent(event: Event, uses: int) -> str | None:
    """Why the delivery's ``response_url`` can no longer be used, or ``None`` while it can."""
    if uses >= RESPONSE_URL_USES:
        return f"its response_url was already used {uses} times (Slack takes {RESPONSE_URL_USES})"
    age = time.time() - datetime.fromisoformat(event.received_at).timestamp()
    if age > RESPONSE_URL_WINDOW:
        return f"its response_url expired ({age / 60:.0f} minutes after the command; Slack allows 30)"
    return None


async def _with_blocks_or_text(answer: Message, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Send the answer with its blocks; if Slack still refuses them, once more as text alone."""
    if not answer.blocks:
        return await send({"text": answer.text})
    try:
        await send({"text": answer.text, "blocks": answer.blocks})
    except PermanentError as exc:
        if "invalid_blocks" not in str(exc):
            raise
        await send({"text": answer.text})


async def _edit(event: Event, record: dict[str, str], body: dict[str, Any], run: Run, **options: Any) -> None:
    """``chat.update`` of this delivery's placeholder, under the workspace's budget."""
    if "pacer" not in options:
        options["pacer"] = budget_for(run.services).pacer(team_of(event.payload, event.meta), "chat.update")
    channel, ts = record["slack_channel"], record["slack_ts"]
    await call(web_client(run.services).chat_update, channel=channel, ts=ts, **body, **options)


async def _post(event: Event, target: Target, body: dict[str, Any], run: Run, *, deadline: float) -> str:
    """``chat.postMessage`` in the target's thread with this delivery's metadata; returns its ``ts``."""
    team = team_of(event.payload, event.meta)
    response = await call(
        web_client(run.services).chat_postMessage,
        channel=target.channel,
        thread_ts=target.thread_ts,
        metadata=metadata(run.job_id),
        deadline=deadline,
        idempotent=False,
        pacer=budget_for(run.services).pacer(team, "chat.postMessage", scope=str(target.channel)),
        **body,
    )
    return str(response["ts"])


async def _find_posted(event: Event, target: Target, run: Run) -> str | None:
    """The ``ts`` of this delivery's placeholder in the thread, if an earlier attempt posted it.

    Only messages posted since the delivery arrived are read, page after page, so a long thread
    costs no more than a short one.
    """
    if not target.thread_ts or not target.channel:
        return None
    reader = ThreadReader.since_delivery(event, run, channel=target.channel, thread_ts=target.thread_ts)
    try:
        async for found in reader.messages(deadline=run.deadline):
            metadata = as_dict(found.get("metadata"))
            if metadata.get("event_type") == METADATA_TYPE:
                if as_dict(metadata.get("event_payload")).get("delivery") == run.job_id:
                    return str(found["ts"])
    except PermanentError as exc:  # no history scope, thread gone: post a new placeholder
        run.log.info("could not look for an earlier placeholder", extra={"fields": {"error": describe(exc)}})
    return None


def _clipped(event: Event, text: str) -> str:
    """The command header (if any) and ``text``, within a section's 3,000 characters."""
    target = target_of(event)
    return clip_mrkdwn((target.header if target else "") + text, 3000)


def _cannot_post(exc: PermanentError) -> bool:
    return any(code in str(exc) for code in _CANNOT_POST)


def _is_slack_url(url: str, api_url: str) -> bool:
    """Only post to Slack's own response hosts (or the configured API's host, as in tests)."""
    parts, api = urlsplit(url), urlsplit(api_url)
    if parts.scheme == "https" and parts.hostname in _SLACK_RESPONSE_HOSTS:
        return True
    return (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


def _late(run: Run) -> float:
    # The answer may still be posted in the runtime's margin after the agent's deadline.
    return run.deadline + 20.0
