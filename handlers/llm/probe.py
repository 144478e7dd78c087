"""Whether the model server answers, for ``/health``: probed on a timer, never on a request.

A worker running the ``llm`` agent asks ``GET <LLM_BASE_URL>/models`` every ``PROBE_INTERVAL``
seconds and writes what it found to ``keys.MODEL_HEALTH`` for ``ANSWER_KEPT`` seconds: when no
worker probes any more, the answer goes instead of going stale. Any HTTP answer below 500 but
401/403 means the server is up (some servers have no ``/models``); 401/403 mean the key is
refused, which every run would meet too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import redis

from handlers.llm.client import ChatConfig, shared_http
from handlers.state import keys

__all__ = ["ANSWER_KEPT", "PROBE_INTERVAL", "PROBE_TIMEOUT", "ModelProbe", "models_url", "probe"]

PROBE_INTERVAL = 30.0
ANSWER_KEPT = 90
PROBE_TIMEOUT = 5.0


def models_url(config: ChatConfig) -> str:
    """``<base>/models`` for the configured base URL (which may name ``/chat/completions`` itself)."""
    base = config.base_url.rstrip("/").removesuffix("/chat/completions")
    return base + "/models"


async def probe(config: ChatConfig, *, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """``{"status": "ok" | "refused" | "error" | "unreachable", "detail", "checked_at", "seconds"}``."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    try:
        client = http or shared_http()
        response = await client.get(models_url(config), headers=headers, timeout=PROBE_TIMEOUT)
    except httpx.HTTPError as exc:
        status, detail = "unreachable", f"cannot reach {config.base_url}: {type(exc).__name__}"
    else:
        status, detail = _judge(response.status_code)
    return {
        "status": status,
        "detail": detail,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 3),
    }


def _judge(code: int) -> tuple[str, str]:
    if code in (401, 403):
        return "refused", f"the model server refused the credentials (HTTP {code}): check LLM_API_KEY"
    if code >= 500:
        return "error", f"the model server answered HTTP {code}"
    return "ok", f"HTTP {code}"


class ModelProbe:
    """One probe and its record in Redis; the worker calls it every ``PROBE_INTERVAL`` seconds."""

    interval = PROBE_INTERVAL

    def __init__(self, config: ChatConfig, connection: redis.Redis, *, worker: str) -> None:
        self.config = config
        self.connection = connection
        self.worker = worker

    async def __call__(self) -> None:
        answer = {**await probe(self.config), "worker": self.worker}
        await asyncio.to_thread(self.connection.set, keys.MODEL_HEALTH, orjson.dumps(answer), ex=ANSWER_KEPT)
