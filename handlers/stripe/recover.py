"""Stripe events that never reached us, found through Stripe's API and queued like a delivery.

Stripe retries a failed webhook for three days, then gives up; its events stay listed for 30
days (https://docs.stripe.com/webhooks/process-undelivered-events):

- snapshot events: ``GET /v1/events?delivery_success=false`` ("events which are still pending or
  have failed all delivery attempts to a webhook endpoint"), newest first, ``created[gte]`` the
  sweep's floor, ``starting_after`` the cursor, 100 a page;
- thin events (only with ``STRIPE_THIN_EVENT_TYPES``): ``GET /v2/core/events`` has no delivery
  filter, so every event of those types since the floor is listed (``next_page_url`` is the
  cursor) and the claim check keeps those the gateway already has.

``delivery_success=false`` covers every endpoint of the account, so an event another endpoint
failed on is listed too: the shared sweep skips ids the gateway claimed. An event to bring back
came from Stripe's API with our key, so it is genuine: it is parsed by the ingress's own
``gateway.platforms.stripe.parse`` and queued through the same atomic claim and enqueue
(``gateway.queue.Enqueuer``), so a late webhook of the same event is a duplicate. Listed events
are rendered in the API version of their creation, as webhooks of an endpoint without its own
version are. Calls go through ``handlers.stripe.client.call`` (429 and 5xx retried, then the
source stops and the next sweep resumes). Connected accounts' events are not listed (they need
``Stripe-Account`` per account).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.platforms import stripe as inbound
from gateway.queue import Enqueuer, envelope_for, to_job_id
from gateway.types import Delivery
from handlers.errors import PermanentError
from handlers.recover import Missed, Page, Source
from handlers.services import Services
from handlers.stripe.client import call, stripe_client

__all__ = ["PAGE_SIZE", "RETENTION", "SWEEP", "StripeSweep"]

PAGE_SIZE = 100
RETENTION = 30 * 24 * 3600.0


class StripeSweep:
    """The Stripe side of ``gateway recover`` and the workers' sweeps (``WorkerPlatform.recover``)."""

    platform = "stripe"

    def unavailable(self, services: Services) -> str | None:
        """Why Stripe cannot be swept (naming what to set), or ``None``."""
        if "stripe" not in services.settings.base.enabled_platforms:
            return "Stripe is off: STRIPE_WEBHOOK_SECRET is not set"
        if not services.settings.stripe.api_key:
            return "STRIPE_API_KEY is not set (the sweep lists events with it)"
        return None

    @asynccontextmanager
    async def open(self, services: Services) -> AsyncIterator[list[Source]]:
        """v1 events, and v2 events of the configured thin types, over one enqueuer."""
        s = services.settings
        enqueuer = Enqueuer(
            s.redis_url, queue_name=s.queue_name, dedupe_ttl=s.dedupe_ttl, run_deadline=s.run_deadline
        )
        try:
            sources: list[Source] = [_SnapshotEvents(services, enqueuer)]
            if s.stripe.thin_event_types:
                sources.append(_ThinEvents(services, enqueuer, s.stripe.thin_event_types))
            yield sources
        finally:
            await enqueuer.aclose()


SWEEP = StripeSweep()


@dataclass
class _Events:
    """What both event lists share: the client, and queueing an event as the ingress would."""

    services: Services
    enqueuer: Enqueuer

    async def bring_back(self, missed: Missed) -> bool:
        """Queue the event (False: it was claimed meanwhile, by a late webhook)."""
        delivery = inbound.parse(orjson.dumps(missed.ref), {})
        if not isinstance(delivery, Delivery):
            raise PermanentError(f"{missed.delivery_id} is not an event the gateway queues")
        envelope = envelope_for(inbound.name, delivery, received_at=time.time())
        job_id = to_job_id(inbound.name, delivery.delivery_id)
        return await self.enqueuer.submit(job_id, inbound.job_path, envelope)

    async def _get(self, path: str, **params: Any) -> dict[str, Any]:
        client = stripe_client(self.services)
        response = await call(client.raw_request, "get", path, max_network_retries=0, **params)
        body = json.loads(response.body)
        if not isinstance(body, dict):
            raise PermanentError(f"Stripe {path}: expected a list object")
        return body


class _SnapshotEvents(_Events):
    """``GET /v1/events?delivery_success=false`` (a ``recover.Source``)."""

    name = "v1 events"
    retention = RETENTION

    async def page(self, cursor: str | None, floor: float) -> Page:
        """Events at or after ``floor`` that are not delivered, newest first, after ``cursor``."""
        params: dict[str, Any] = {
            "limit": PAGE_SIZE,
            "delivery_success": False,
            "created": {"gte": int(floor)},
        }
        if cursor:
            params["starting_after"] = cursor
        body = await self._get("/v1/events", **params)
        events = [event for event in body.get("data") or [] if isinstance(event, dict)]
        missed = [
            Missed(str(e["id"]), str(e.get("type", "")), float(e.get("created") or 0), ref=e) for e in events
        ]
        oldest = min((item.at for item in missed), default=None)
        more = bool(body.get("has_more")) and bool(events)
        return Page(missed, oldest, str(events[-1]["id"]) if more else None)


class _ThinEvents(_Events):
    """``GET /v2/core/events`` of the configured types (a ``recover.Source``)."""

    name = "v2 events"
    retention = RETENTION

    def __init__(self, services: Services, enqueuer: Enqueuer, types: tuple[str, ...]) -> None:
        super().__init__(services, enqueuer)
        self.types = list(types)

    async def page(self, cursor: str | None, floor: float) -> Page:
        """Events of the types at or after ``floor``, newest first; ``cursor`` is a ``next_page_url``."""
        if cursor:
            body = await self._get(cursor)
        else:
            created = {"gte": datetime.fromtimestamp(floor, UTC).isoformat().replace("+00:00", "Z")}
            body = await self._get("/v2/core/events", limit=PAGE_SIZE, types=self.types, created=created)
        events = [event for event in body.get("data") or [] if isinstance(event, dict)]
        missed = [
            Missed(str(e["id"]), str(e.get("type", "")), _iso_time(e.get("created")), ref=e) for e in events
        ]
        oldest = min((item.at for item in missed), default=None)
        next_page = body.get("next_page_url")
        return Page(missed, oldest, str(next_page) if next_page and events else None)


def _iso_time(value: object) -> float:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return 0.0
