"""Posting alerts to ``GATEWAY_ALERT_SLACK_CHANNEL``: each alert once, whichever worker posts it.

Either side raises alerts into the ``keys.ALERTS`` stream (``gateway.alerts``). Every worker
with the channel set runs an ``AlertPoster``; they read the stream as one consumer group, so
each alert goes to one of them. A poster that died mid-post leaves its alert pending, and
another takes it over after ``CLAIM_IDLE_MS``. An alert older than ``STALE_AFTER`` when read
(raised while no worker posted) is dropped rather than posted late; one Slack refuses for good
(``channel_not_found``, ``not_in_channel``) is logged and dropped, not retried forever. Posts
use ``SLACK_BOT_TOKEN`` (the operators' workspace), never an installation's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis

from handlers.errors import PermanentError
from handlers.services import Services
from handlers.slack import client as slack
from handlers.slack.format import escape
from handlers.state import keys

__all__ = ["CLAIM_IDLE_MS", "GROUP", "STALE_AFTER", "AlertPoster"]

logger = logging.getLogger("handlers.alerts")

GROUP = "posters"
CLAIM_IDLE_MS = 60_000
STALE_AFTER = 3600.0
_BATCH = 10


class AlertPoster:
    """Posts raised alerts to ``channel`` with ``SLACK_BOT_TOKEN``, each once across all workers."""

    interval = 2.0

    def __init__(self, services: Services, channel: str, *, consumer: str) -> None:
        self.services = services
        self.channel = channel
        self.consumer = consumer
        self._group_ready = False

    async def __call__(self) -> None:
        for entry_id, fields in await asyncio.to_thread(self._read):
            await self._post(entry_id, fields)

    def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        connection = self.services.redis
        if not self._group_ready:
            try:
                connection.xgroup_create(keys.ALERTS, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._group_ready = True
        # Alerts a dead poster left pending first, then new ones.
        claimed: Any = connection.xautoclaim(
            keys.ALERTS, GROUP, self.consumer, CLAIM_IDLE_MS, start_id="0", count=_BATCH
        )
        fresh: Any = connection.xreadgroup(GROUP, self.consumer, {keys.ALERTS: ">"}, count=_BATCH)
        return list(claimed[1]) + [entry for _, entries in fresh for entry in entries]

    async def _post(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        alert = {name.decode(): value.decode() for name, value in fields.items()}
        if _age(entry_id) > STALE_AFTER:
            logger.info("alert dropped: too old to post", extra={"fields": {"alert": alert.get("cause")}})
        else:
            try:
                await slack.call(
                    slack.web_client(self.services).chat_postMessage,
                    channel=self.channel,
                    text=_message(alert),
                    unfurl_links=False,
                    idempotent=False,
                )
            except PermanentError as exc:
                logger.error("alert not posted: %s", exc, extra={"fields": {"alert": alert.get("cause")}})
            # A transient failure leaves it pending: another turn (or worker) posts it.
            except Exception:  # noqa: BLE001 - the poster must outlive one bad post
                logger.warning("alert not posted yet", exc_info=True)
                return
        await asyncio.to_thread(self.services.redis.xack, keys.ALERTS, GROUP, entry_id)


def _message(alert: dict[str, Any]) -> str:
    """The Slack text: escaped, since a reason may quote what a payload or an API said."""
    return f":rotating_light: *{escape(alert.get('text', ''))}*\nNext: {escape(alert.get('next', ''))}"


def _age(entry_id: bytes) -> float:
    """Seconds since the stream entry was added (its id starts with the Unix time in ms)."""
    return time.time() - int(entry_id.split(b"-")[0]) / 1000
