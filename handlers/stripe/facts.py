"""What the Stripe agent knows before it runs: the event's object as it is now.

Events arrive out of order and snapshots go stale, so ``enrich`` reads the object's current
state (thin events: the v2 event, then its ``related_object``) into ``facts["object"]``.
Connect events are read on the event's ``account``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from handlers.agent import Event, Run
from handlers.errors import PermanentError
from handlers.payload import as_dict
from handlers.retry import describe
from handlers.stripe.client import call, is_configured, object_path, request_options, stripe_client
from handlers.stripe.payload import event_object

__all__ = ["enrich"]


async def enrich(event: Event, run: Run) -> Event:
    """Add ``facts["object"]`` (current state) and, for thin events, ``facts["event"]``."""
    if not is_configured(run.services):
        return event
    facts: dict[str, Any] = {}
    try:
        if event.meta.get("kind") == "thin":
            facts["event"] = await _get(f"/v2/core/events/{event.delivery_id}", event, run)
            url = as_dict(facts["event"].get("related_object")).get("url")
            if url:
                facts["object"] = await _get(str(url), event, run)
        elif (path := object_path(event_object(event.payload))) is not None:
            facts["object"] = await _get(path, event, run)
    except PermanentError as exc:  # gone or not readable: the agent works from the snapshot
        run.log.info("could not read the current object", extra={"fields": {"error": describe(exc)}})
    return dataclasses.replace(event, facts={**event.facts, **facts})


async def _get(path: str, event: Event, run: Run) -> dict[str, Any]:
    client = stripe_client(run.services)
    response = await call(client.raw_request, "get", path, deadline=run.deadline, **request_options(event))
    return dict(response.data)
