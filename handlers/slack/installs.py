"""The installing workspace's bot token for a Slack delivery; rotation; uninstalls.

A delivery names its workspace (``team_id``, and ``enterprise_id`` on Enterprise Grid); the
installation saved by ``/slack/oauth_redirect`` for it (``gateway.installations``) gives the
token to reply with. Without one, ``SLACK_BOT_TOKEN`` is used (a single workspace).

Token rotation (https://api.slack.com/authentication/rotation): a rotating token lives 12 hours;
within ``REFRESH_BEFORE`` of its end it is exchanged with ``oauth.v2.access``
(``grant_type=refresh_token``). A refresh token works once, so one worker refreshes under a
Redis lock and saves the new pair at once; the others wait for it and read it back.

``app_uninstalled`` and ``tokens_revoked`` (of the bot) remove the workspace's installation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient

from gateway import keys
from gateway.installations import Cipher, Installation, lookup_keys
from gateway.types import Envelope
from handlers import clients
from handlers.errors import PermanentError
from handlers.services import Services
from handlers.slack.client import call

__all__ = ["LIFECYCLE_EVENTS", "REFRESH_BEFORE", "find", "forget", "is_lifecycle", "workspace_of"]

REFRESH_BEFORE = 600.0  # seconds before expiry a rotating token is refreshed
LIFECYCLE_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})
_LOCK_SECONDS = 30
_WAIT_SECONDS = 10.0


def workspace_of(envelope: Envelope) -> tuple[str | None, str | None]:
    """``(enterprise_id, team_id)`` of a delivery, from any of Slack's three body shapes."""
    payload, meta = envelope["payload"], envelope["meta"]
    enterprise = payload.get("enterprise_id") or _id(payload.get("enterprise"))
    team = meta.get("team_id") or payload.get("team_id") or _id(payload.get("team"))
    auths = payload.get("authorizations")
    if isinstance(auths, list) and auths and isinstance(auths[0], dict):
        enterprise = enterprise or auths[0].get("enterprise_id")
        team = team or auths[0].get("team_id")
    return (enterprise if isinstance(enterprise, str) else None), (team if isinstance(team, str) else None)


def is_lifecycle(envelope: Envelope) -> bool:
    """True for ``app_uninstalled`` and ``tokens_revoked``: they change installations, not runs."""
    return envelope["event"] in LIFECYCLE_EVENTS


async def find(services: Services, envelope: Envelope) -> Installation | None:
    """The installation answering for ``envelope``'s workspace, refreshed if its token is due."""
    cipher = _cipher(services)
    if cipher is None:
        return None
    enterprise, team = workspace_of(envelope)
    for key in lookup_keys(enterprise, team):
        fields = await asyncio.to_thread(services.redis.hgetall, key)
        if fields:
            installation = Installation.from_fields(fields, cipher)
            if installation.expires_within(REFRESH_BEFORE, now=time.time()):
                return await _refresh(services, cipher, installation)
            return installation
    return None


async def forget(services: Services, envelope: Envelope) -> list[str]:
    """Remove the workspace's installation on ``app_uninstalled`` or a revoked bot token; the keys gone."""
    enterprise, team = workspace_of(envelope)
    inner = envelope["payload"].get("event") or {}
    revoked_bots = (inner.get("tokens") or {}).get("bot") if isinstance(inner, dict) else None
    if envelope["event"] == "tokens_revoked" and not revoked_bots:
        return []  # only user tokens were revoked; the bot keeps answering
    removed = []
    for key in lookup_keys(enterprise, team)[:1]:
        if await asyncio.to_thread(services.redis.delete, key):
            removed.append(key)
    return removed


async def _refresh(services: Services, cipher: Cipher, installation: Installation) -> Installation:
    lock = keys.slack_installation_lock(installation.key)
    if not await asyncio.to_thread(services.redis.set, lock, "1", nx=True, ex=_LOCK_SECONDS):
        return await _refreshed_by_another(services, cipher, installation)
    try:
        # Another worker may have refreshed it between our read and our lock: its pair is current.
        fields = await asyncio.to_thread(services.redis.hgetall, installation.key)
        current = Installation.from_fields(fields, cipher) if fields else installation
        if current.refresh_token != installation.refresh_token:
            return current
        slack = services.settings.slack
        if not (slack.client_id and slack.client_secret):
            raise PermanentError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are needed to refresh its token")
        client = WebClient(base_url=slack.api_url, timeout=clients.SDK_TIMEOUT_SECONDS, retry_handlers=[])
        response = await call(
            client.oauth_v2_access,
            client_id=slack.client_id,
            client_secret=slack.client_secret,
            grant_type="refresh_token",
            refresh_token=installation.refresh_token,
            idempotent=False,  # a refresh token works once: never re-send after an unknown outcome
        )
        fresh = installation.refreshed(_data(response), now=time.time())
        mapping: Any = fresh.to_fields(cipher)
        await asyncio.to_thread(services.redis.hset, fresh.key, mapping=mapping)
        return fresh
    finally:
        await asyncio.to_thread(services.redis.delete, lock)


async def _refreshed_by_another(services: Services, cipher: Cipher, stale: Installation) -> Installation:
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        fields = await asyncio.to_thread(services.redis.hgetall, stale.key)
        current = Installation.from_fields(fields, cipher) if fields else stale
        if current.bot_token != stale.bot_token:
            return current
    return stale  # still valid until it expires; the next run refreshes it


def _cipher(services: Services) -> Cipher | None:
    keys_set = services.settings.base.encryption_keys
    return Cipher(keys_set) if keys_set else None


def _data(response: Any) -> Mapping[str, Any]:
    data = getattr(response, "data", response)
    return data if isinstance(data, Mapping) else {}


def _id(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else None
