"""The Stripe result, written back once: a note in the object's metadata, and an announcement in Slack.

``deliver`` writes the result as metadata on the object (``gateway_summary``,
``gateway_delivery``; values ≤ 500 characters, keys ≤ 40; an object that already holds 49 keys
of its own is left alone, the run record says so) and, when ``STRIPE_SLACK_CHANNEL`` is set,
announces it there. Connect events act on the event's ``account`` (thin events: its ``context``).

Exactly once: the metadata write is a set, not an append, and carries an idempotency key made
of the event id and the written values, so repeating it (in place or on a rerun) changes
nothing. The Slack announcement's ``ts`` is stored in the delivery's ``ReplyMarker``.
"""

from __future__ import annotations

import hashlib
import re

from handlers.agent import Event, Reply, Run
from handlers.payload import as_dict
from handlers.pipeline import log_delivery, record_undelivered
from handlers.slack import client as slack
from handlers.slack.format import clip, to_mrkdwn
from handlers.state.replies import ReplyMarker
from handlers.stripe.client import call, is_configured, object_path, request_options, stripe_client

__all__ = ["DELIVERY_KEY", "METADATA_KEYS", "METADATA_VALUE_LIMIT", "SUMMARY_KEY", "deliver", "metadata_for"]

METADATA_VALUE_LIMIT = 500
METADATA_KEYS = 50  # https://docs.stripe.com/metadata: 50 keys, names of 40 characters, values of 500
SUMMARY_KEY, DELIVERY_KEY = "gateway_summary", "gateway_delivery"  # both ≤ 40 characters
_MARKUP = re.compile(r"[*`]|:[a-z_]+: ?")


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Write the summary onto the object, then announce in Slack if a channel is configured."""
    if not is_configured(run.services):
        return await log_delivery(event, reply, run)
    # Only objects read successfully before the run: a deleted or unknown one cannot take metadata.
    obj = as_dict(event.facts.get("object"))
    path = object_path(obj)
    if path is None:
        run.log.info("no readable object to annotate for this event")
    elif not _has_room(as_dict(obj.get("metadata"))):
        await record_undelivered(run, f"{obj.get('id')} already holds {METADATA_KEYS - 1}+ metadata keys")
    else:
        await _annotate(path, event, reply, run)
    if run.services.settings.stripe.slack_channel:
        await _announce(reply, run)


def metadata_for(event: Event, reply: Reply) -> dict[str, str]:
    """The metadata written back: the summary as plain text and the event id, each capped."""
    summary = " ".join(_MARKUP.sub("", reply.text).split())
    return {
        SUMMARY_KEY: clip(summary, METADATA_VALUE_LIMIT),
        DELIVERY_KEY: event.delivery_id[:METADATA_VALUE_LIMIT],
    }


def _has_room(metadata: dict[str, object]) -> bool:
    """Whether our two keys fit beside the object's own (Stripe refuses a 51st key)."""
    others = {key for key in metadata if key not in (SUMMARY_KEY, DELIVERY_KEY)}
    return len(others) + 2 <= METADATA_KEYS


async def _annotate(path: str, event: Event, reply: Reply, run: Run) -> None:
    metadata = metadata_for(event, reply)
    digest = hashlib.sha256(repr(sorted(metadata.items())).encode()).hexdigest()[:16]
    await call(
        stripe_client(run.services).raw_request,
        "post",
        path,
        metadata=metadata,
        idempotency_key=f"gateway-{event.delivery_id}-{digest}",
        deadline=run.deadline + 20,
        **request_options(event),
    )


async def _announce(reply: Reply, run: Run) -> None:
    if not slack.is_configured(run.services):
        run.log.warning("STRIPE_SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not; not announced")
        return
    marker = ReplyMarker.for_run(run)
    if (await marker.load()).get("stripe_announce_ts"):
        return
    response = await slack.call(
        slack.web_client(run.services).chat_postMessage,
        channel=run.services.settings.stripe.slack_channel,
        text=to_mrkdwn(reply.text),
        deadline=run.deadline + 20,
        idempotent=False,
    )
    await marker.note(stripe_announce_ts=str(response["ts"]))
