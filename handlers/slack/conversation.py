"""Talking with a running agent in Slack: the Stop button and posting into the thread.

- ``working_blocks``: the placeholder's blocks while a run works, its text and a Stop button
  (``payload.STOP_ACTION``, value: the run's job id). Pressing it sends a ``block_actions``
  interaction, which the ingress queues like any delivery; the worker reads it as a stop
  (``payload.followup``). Slack drops a message's blocks when ``chat.update`` sends text
  without blocks, so the answer, a failure or "Stopped" replace the button.
- ``say``: one message in the thread of the delivery (``run.ask`` questions, "busy"), posted
  once per key, under the workspace's ``chat.postMessage`` budget (``handlers.slack.budget``)
  like every reply; its ``ts`` is kept in the delivery's reply record, and the message carries
  its own metadata type, so it is never taken for the placeholder.
"""

from __future__ import annotations

from typing import Any

from handlers.agent import Event, Run
from handlers.slack.client import budget_for, call, is_configured, web_client
from handlers.slack.format import clip_mrkdwn, to_mrkdwn
from handlers.slack.payload import STOP_ACTION, target_of, team_of
from handlers.state.replies import ReplyMarker

__all__ = ["SAID_TYPE", "STOP_LABEL", "say", "working_blocks"]

SAID_TYPE = "gateway_said"
STOP_LABEL = "Stop"
_SECTION_LIMIT = 3000  # characters of a section block's text


def working_blocks(text: str, job_id: str) -> list[dict[str, Any]]:
    """``text`` (mrkdwn) and a Stop button for run ``job_id``."""
    button = {
        "type": "button",
        "action_id": STOP_ACTION,
        "text": {"type": "plain_text", "text": STOP_LABEL},
        "style": "danger",
        "value": job_id,
    }
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip_mrkdwn(text, _SECTION_LIMIT) or " "}},
        {"type": "actions", "block_id": "gateway_run", "elements": [button]},
    ]


async def say(event: Event, text: str, key: str, run: Run) -> bool:
    """Post ``text`` in the delivery's thread, once per ``key``; False where nothing can be posted."""
    target = target_of(event)
    if target is None or not target.channel:
        return False
    if not is_configured(run.services):
        run.log.info("not posted (no Slack token); it would have said:", extra={"fields": {"text": text}})
        return False
    marker, field = ReplyMarker.for_run(run), f"said_{key}"
    if (await marker.load()).get(field):
        return True  # an earlier attempt posted it
    response = await call(
        web_client(run.services).chat_postMessage,
        channel=target.channel,
        thread_ts=target.thread_ts,
        text=to_mrkdwn(text),
        metadata={"event_type": SAID_TYPE, "event_payload": {"delivery": run.job_id, "key": key}},
        deadline=run.deadline,
        idempotent=False,
        pacer=budget_for(run.services).pacer(
            team_of(event.payload, event.meta), "chat.postMessage", scope=target.channel
        ),
    )
    await marker.note(**{field: str(response["ts"])})
    return True
