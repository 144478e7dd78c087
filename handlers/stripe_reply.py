"""Stripe facts before the run (the object as it is now) and the result written back after it.

Events arrive out of order and snapshots go stale, so ``enrich`` reads the object's current
state through ``StripeClient`` (thin events: the v2 event, then its ``related_object``) into
``facts["object"]``. ``deliver`` writes the result as metadata on the object
(``gateway_summary``, ``gateway_delivery``; values ≤ 500 characters, keys ≤ 40) and, when
``STRIPE_SLACK_CHANNEL`` is set, announces it there. Connect events act on the event's
``account`` (the ``Stripe-Account`` header). ``max_network_retries`` is 0 on every request:
``clients.call`` retries.

Exactly once: the metadata write is a set, not an append, and carries an idempotency key made
of the event id and the written values, so repeating it (in place or on a rerun) changes
nothing. The Slack announcement's ``ts`` is stored in the delivery's ``ReplyMarker``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from handlers import clients, services
from handlers.agent import Event, Reply, Run
from handlers.errors import PermanentError
from handlers.payload import as_dict
from handlers.platform import log_delivery, reply_marker
from handlers.retry import describe
from handlers.slack_format import clip, to_mrkdwn

METADATA_VALUE_LIMIT = 500
SUMMARY_KEY, DELIVERY_KEY = "gateway_summary", "gateway_delivery"  # both ≤ 40 characters
# v1 collection of each object type we read and annotate (all of them accept metadata).
COLLECTIONS = {
    "charge": "charges",
    "customer": "customers",
    "dispute": "disputes",
    "invoice": "invoices",
    "payment_intent": "payment_intents",
    "setup_intent": "setup_intents",
    "subscription": "subscriptions",
    "refund": "refunds",
    "payout": "payouts",
    "product": "products",
    "price": "prices",
    "checkout.session": "checkout/sessions",
}
_MARKUP = re.compile(r"[*`]|:[a-z_]+: ?")


def is_configured() -> bool:
    """True when ``STRIPE_API_KEY`` is set: otherwise results are only logged."""
    return bool(services.current().settings.stripe.api_key)


async def enrich(event: Event, run: Run) -> Event:
    """Add ``facts["object"]`` (current state) and, for thin events, ``facts["event"]``."""
    if not is_configured():
        return event
    facts: dict[str, Any] = {}
    try:
        if event.meta.get("kind") == "thin":
            facts["event"] = await _get(f"/v2/core/events/{event.delivery_id}", event, run)
            url = as_dict(facts["event"].get("related_object")).get("url")
            if url:
                facts["object"] = await _get(str(url), event, run)
        elif (path := object_path(_snapshot(event))) is not None:
            facts["object"] = await _get(path, event, run)
    except PermanentError as exc:  # gone or not readable: the agent works from the snapshot
        run.log.info("could not read the current object", extra={"fields": {"error": describe(exc)}})
    return dataclasses.replace(event, facts={**event.facts, **facts})


async def deliver(event: Event, reply: Reply, run: Run) -> None:
    """Write the summary onto the object, then announce in Slack if a channel is configured."""
    if not is_configured():
        return await log_delivery(event, reply, run)
    # Only objects read successfully before the run: a deleted or unknown one cannot take metadata.
    path = object_path(as_dict(event.facts.get("object")))
    if path is not None:
        await _annotate(path, event, reply, run)
    else:
        run.log.info("no readable object to annotate for this event")
    if services.current().settings.stripe.slack_channel:
        await _announce(reply, run)


def object_path(obj: Mapping[str, Any]) -> str | None:
    """``/v1/charges/ch_1`` for a charge, ``None`` for types we do not annotate."""
    collection = COLLECTIONS.get(str(obj.get("object")))
    return f"/v1/{collection}/{obj['id']}" if collection and obj.get("id") else None


def metadata_for(event: Event, reply: Reply) -> dict[str, str]:
    """The metadata written back: the summary as plain text and the event id, each capped."""
    summary = " ".join(_MARKUP.sub("", reply.text).split())
    return {
        SUMMARY_KEY: clip(summary, METADATA_VALUE_LIMIT),
        DELIVERY_KEY: event.delivery_id[:METADATA_VALUE_LIMIT],
    }


async def _annotate(path: str, event: Event, reply: Reply, run: Run) -> None:
    metadata = metadata_for(event, reply)
    digest = hashlib.sha256(repr(sorted(metadata.items())).encode()).hexdigest()[:16]
    await clients.call(
        services.current().stripe.raw_request,
        "post",
        path,
        metadata=metadata,
        idempotency_key=f"gateway-{event.delivery_id}-{digest}",
        deadline=run.deadline + 20,
        **_options(event),
    )


async def _announce(reply: Reply, run: Run) -> None:
    shared, marker = services.current(), reply_marker(run)
    if not shared.settings.slack.bot_token:
        run.log.warning("STRIPE_SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not; not announced")
        return
    if (await marker.load()).get("stripe_announce_ts"):
        return
    response = await clients.call(
        shared.slack.chat_postMessage,
        channel=shared.settings.stripe.slack_channel,
        text=to_mrkdwn(reply.text),
        deadline=run.deadline + 20,
        idempotent=False,
    )
    await marker.note(stripe_announce_ts=str(response["ts"]))


async def _get(path: str, event: Event, run: Run) -> dict[str, Any]:
    response = await clients.call(
        services.current().stripe.raw_request, "get", path, deadline=run.deadline, **_options(event)
    )
    return dict(response.data)


def _options(event: Event) -> dict[str, Any]:
    # Connect: act on the connected account the event came from.
    account = event.meta.get("account")
    return {"max_network_retries": 0, **({"stripe_account": account} if account else {})}


def _snapshot(event: Event) -> dict[str, Any]:
    return as_dict(as_dict(event.payload.get("data")).get("object"))
