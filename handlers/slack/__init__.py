"""Slack on the worker side: Events API events, slash commands and interactivity, run through the agent.

Session: one Slack thread (team + channel + ``thread_ts``, or the message's own ``ts`` when it
starts a thread). A slash command starts its own conversation; an interaction (a button on a
message) belongs to that message's thread.

- ``payload``: the one reading of Slack's bodies (thread, target, session key, actor);
- ``facts``: what the agent knows before it runs (``status``: the queue's figures);
- ``reply``: a threaded answer that starts as a "working on it" placeholder, shows throttled
  progress and is replaced by the answer, posted exactly once; ``render``: a ``Reply`` as a
  message (escaped text, the structured mentions, links and blocks it asks for); ``format``:
  escaping and Markdown to mrkdwn; ``blocks``: Block Kit's limits;
- ``client``: the Web API client and slack-sdk's errors as ours; ``budget``: Slack's rate limits
  as one budget per workspace and method, shared by every worker through Redis;
- ``thread``: reading a thread page by page; ``tools``: what the ``llm`` agent may read (the thread).

``handle`` is the job function the ingress names (``handlers.slack.handle``).
"""

from __future__ import annotations

from typing import Any

from gateway.types import Envelope
from handlers.pipeline import WorkerPlatform, run_event
from handlers.slack import facts, reply, tools
from handlers.slack.payload import is_ignored, session_key, to_event

__all__ = ["PLATFORM", "handle", "session_key"]

PLATFORM = WorkerPlatform(
    name="slack",
    session_key=session_key,
    to_event=to_event,
    is_ignored=is_ignored,
    deliver=reply.deliver,
    on_progress=reply.on_progress,
    on_timeout=reply.on_timeout,
    on_failure=reply.on_failure,
    begin=reply.begin,
    enrich=facts.enrich,
    tools=tools.build,
    prompt=tools.PROMPT,
    progress_interval=reply.PROGRESS_INTERVAL,
)


async def handle(envelope: Envelope) -> dict[str, Any]:
    """The job function ``handlers.slack.handle``: run the agent on one Slack delivery."""
    return await run_event(PLATFORM, envelope)
