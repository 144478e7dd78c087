"""What every run of a worker process shares: its settings, its Redis client and the SDK clients.

A worker builds one ``Services`` when it starts and hands it to every run (``Run.services``), so
settings are read once and clients keep their connection pools. Each platform package builds
its own clients on first use and keeps them here (``shared``). Under a stock ``rq worker``, where
nothing runs at start, ``for_settings`` keeps one per distinct settings instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis

from handlers.config import WorkerSettings

__all__ = ["Services", "for_settings"]

T = TypeVar("T")


class Services:
    """The settings of this process and the clients built from them; safe to share between threads."""

    def __init__(self, settings: WorkerSettings, *, connection: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = connection or redis.Redis.from_url(settings.redis_url)
        self._shared: dict[str, Any] = {}
        self._lock = threading.Lock()

    def shared(self, key: str, build: Callable[[], T]) -> T:
        """The object kept under ``key``, built by ``build()`` the first time it is asked for.

        ``build`` may raise (a missing token): nothing is kept then, and the next call tries again.
        """
        with self._lock:
            if key not in self._shared:
                self._shared[key] = build()
            return cast(T, self._shared[key])


@functools.lru_cache(maxsize=8)
def for_settings(settings: WorkerSettings) -> Services:
    """One ``Services`` per distinct settings (settings are frozen and hashable), for the stock-RQ path."""
    return Services(settings)
