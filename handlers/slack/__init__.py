"""Slack on the worker side: Events API events, slash commands and interactivity, run through the agent.

Session: one Slack thread (team + channel + ``thread_ts``, or the message's own ``ts`` when it
starts a thread). A slash command starts its own conversation; an interaction (a button on a
message) belongs to that message's thread.

- ``payload``: the one reading of Slack's bodies (thread, target, session key, actor);
- ``facts``: what the agent knows before it runs (``status``: the queue's figures);
- ``reply``: a threaded answer that starts as a "working on it" placeholder, shows throttled
  progress and is replaced by the answer, posted exactly once; ``stream``: the answer streamed
  into its thread instead; ``status``: an assistant thread's "thinking" status; ``render``: a ``Reply`` as a
  message (escaped text, the structured mentions, links and blocks it asks for); ``format``:
  escaping and Markdown to mrkdwn; ``blocks``: Block Kit's limits;
- ``client``: the Web API client and slack-sdk's errors as ours; ``budget``: Slack's rate limits
  as one budget per workspace and method, shared by every worker through Redis;
- ``thread``: reading a thread page by page; ``tools``: what the ``llm`` agent may read (the thread);
- ``conversation``: the placeholder's Stop button, and posting into the thread (``run.ask``);
- ``assistant``: the agent container's assistant threads (prompts, title, the channel in view);
- ``feedback``: the feedback buttons under an answer; a click is recorded with its run.

Follow-ups: a mention or direct message in the thread of a working run, and its Stop button.

``handle`` is the job function the ingress names (``handlers.slack.handle``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.types import Envelope
from handlers import metrics
from handlers.config import WorkerSettings
from handlers.pipeline import WorkerPlatform, run_event
from handlers.runtime.context import current
from handlers.services import Services, for_settings
from handlers.slack import assistant, client, conversation, facts, installs, reply, tools
from handlers.slack.payload import (
    feedback_click,
    followup,
    is_bot,
    is_feedback,
    is_ignored,
    session_key,
    to_event,
)
from handlers.state import runs

__all__ = ["PLATFORM", "handle", "session_key"]

logger = logging.getLogger("handlers.slack")


def _missing_credentials(services: Services) -> str | None:
    if client.is_configured(services):
        return None
    return "SLACK_BOT_TOKEN is not set and no installation of this workspace is stored"


PLATFORM = WorkerPlatform(
    name="slack",
    session_key=session_key,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=reply.deliver,
    is_configured=client.is_configured,
    on_progress=reply.on_progress,
    on_timeout=reply.on_timeout,
    on_failure=reply.on_failure,
    on_cancel=reply.on_cancel,
    begin=reply.begin,
    enrich=facts.enrich,
    preview=reply.preview,
    tools=tools.build,
    prompt=tools.PROMPT,
    progress_interval=reply.PROGRESS_INTERVAL,
    missing_credentials=_missing_credentials,
    followup=followup,
    is_bot=is_bot,
    say=conversation.say,
    # A streaming answer carries no blocks, so no Stop button: the stop word works everywhere.
    stop_hint='send me just `{word}` (in a channel: mention me with it) or press Stop on a "Working on it"',
    on_stream=reply.on_stream,
    stream_interval=reply.STREAM_INTERVAL,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.slack.handle``: run the agent on one Slack delivery, replying
    with the installing workspace's token. Some deliveries run no agent: ``app_uninstalled`` /
    ``tokens_revoked`` remove its installation, a feedback click is recorded with its run, and
    the agent container's ``assistant_thread_*`` events set up their thread (``assistant``)."""
    services = _services()
    if installs.is_lifecycle(envelope):
        removed = await installs.forget(services, envelope)
        logger.info(
            "slack installation removed", extra={"fields": {"event": envelope["event"], "keys": removed}}
        )
        return {"status": "ignored", "removed": removed}
    if is_feedback(envelope):
        return await _record_feedback(services, envelope)
    installation = await installs.find(services, envelope)
    client.use_workspace_token(installation.bot_token if installation else None)
    if assistant.is_assistant(envelope):
        return await assistant.handle(
            services, envelope, session=session_key(envelope), deadline=_deadline(services)
        )
    return await run_event(PLATFORM, envelope)


async def _record_feedback(services: Services, envelope: Envelope) -> dict[str, Any]:
    """Keep who rated which run's answer which way; an unknown run is logged and changes nothing."""
    click = feedback_click(envelope)
    if click is None:
        logger.warning("feedback click names no run or no user; nothing recorded")
        return {"status": "ignored", "note": "a feedback click without a readable run or user"}
    fields = {"run": click.job_id, "rating": click.rating, "user": click.user}
    recorded = await asyncio.to_thread(
        runs.add_feedback, services.redis, click.job_id, rating=click.rating, user=click.user, at=click.at
    )
    metrics.count_feedback(PLATFORM.name, click.rating, "recorded" if recorded else "unknown_run")
    if not recorded:
        logger.warning(
            "feedback for a run with no record (unknown or expired); nothing recorded",
            extra={"fields": fields},
        )
        return {"status": "ignored", "note": f"feedback for unknown run {click.job_id}"}
    logger.info("feedback recorded", extra={"fields": fields})
    return {
        "status": "ignored",
        "note": f"feedback recorded: {click.user} rated run {click.job_id} {click.rating}",
    }


def _deadline(services: Services) -> float:
    context = current()
    return context.run.deadline if context is not None else time.time() + services.settings.run_deadline


def _services() -> Services:
    context = current()
    if context is not None:
        return context.run.services
    return for_settings(WorkerSettings.from_environ())  # under a stock rq worker
