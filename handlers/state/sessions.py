"""Conversation state per session, kept in Redis so any worker can pick up the next event.

A session is one Slack thread, one GitHub issue or pull request, one Stripe customer (the
platform module's ``session_key``). Its Redis keys use the SHA-256 of the key, and every stored
turn carries the key itself and is checked on load, so no session ever reads another's turns.
History is bounded in length (``MAX_TURNS``) and age (the retention) and only written when a run
succeeds, in the same transaction that marks the job finished.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import redis
from redis.client import Pipeline

from handlers.agent import Turn
from handlers.state import keys

__all__ = [
    "MAX_AGE",
    "MAX_TEXT",
    "MAX_TURNS",
    "append_turns",
    "build_key",
    "load_history",
    "retention",
    "session_id",
    "set_retention",
]

MAX_TURNS = 50
MAX_AGE = 7 * 24 * 3600
"""How long a session's history is kept by default (``GATEWAY_SESSION_RETENTION``)."""
_retention = MAX_AGE
MAX_TEXT = 4000


def build_key(platform: str, *parts: object) -> str:
    """``platform:part:part`` with each part percent-encoded, so distinct parts never collide."""
    return ":".join([platform, *(quote(str(part), safe="") for part in parts)])


def session_id(key: str) -> str:
    """Fixed-length id used in Redis key names."""
    return hashlib.sha256(key.encode()).hexdigest()


def set_retention(seconds: int) -> None:
    """Keep a session's history ``seconds`` after its last turn (``GATEWAY_SESSION_RETENTION``);
    a worker sets it once at start."""
    global _retention
    _retention = seconds


def retention() -> int:
    """Seconds a session's history is kept after its last turn."""
    return _retention


def load_history(connection: redis.Redis, key: str, *, now: datetime | None = None) -> tuple[Turn, ...]:
    """The session's turns, oldest first, without those older than the retention."""
    raw = connection.lrange(keys.session_history(session_id(key)), -MAX_TURNS, -1)
    oldest = (now or datetime.now(UTC)) - timedelta(seconds=_retention)
    turns = (_decode(item, key) for item in raw)
    return tuple(turn for turn in turns if turn is not None and _parse_time(turn.at) >= oldest)


def append_turns(pipeline: Pipeline, key: str, turns: Iterable[Turn]) -> None:
    """Queue the appends on ``pipeline`` (a transaction): push, trim to ``MAX_TURNS``, refresh TTL."""
    encoded = [_encode(turn, key) for turn in turns]
    if not encoded:
        return
    history = keys.session_history(session_id(key))
    pipeline.rpush(history, *encoded)
    pipeline.ltrim(history, -MAX_TURNS, -1)
    pipeline.expire(history, _retention)


def _encode(turn: Turn, key: str) -> str:
    fields = {"session": key, "role": turn.role, "text": turn.text[:MAX_TEXT], "at": turn.at}
    return json.dumps({**fields, "delivery_id": turn.delivery_id}, ensure_ascii=False)


def _decode(raw: Any, key: str) -> Turn | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or data.get("session") != key
        or data.get("role") not in ("user", "assistant")
    ):
        return None
    return Turn(
        role=data["role"],
        text=str(data.get("text", "")),
        at=str(data.get("at", "")),
        delivery_id=str(data.get("delivery_id", "")),
    )


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
