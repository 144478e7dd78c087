"""Prometheus metrics of the web app, ``GET /metrics``, and who may read metrics (both sides).

The ingress counts deliveries by platform and outcome and times each acknowledgement; the
queue, registry and worker figures are read from Redis when scraped (``gateway.health``), so
every web process reports the same shared truth. Labels are low-cardinality by construction:
a platform label is one of the known platforms or ``unknown`` (the URL is the sender's), an
outcome one of ``OUTCOMES``.

Who may read is ``gateway.auth.MetricsAccess`` (``GATEWAY_METRICS``), on the web app and on
the worker's metrics port alike.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import MetricsAccess
from gateway.errors import (
    BodyTooLarge,
    GatewayError,
    InvalidSignature,
    MalformedPayload,
    QueueUnavailable,
    StaleTimestamp,
    Unauthenticated,
    UnknownPlatform,
)
from gateway.health import Figures, read_figures
from gateway.platforms import PLATFORMS
from gateway.types import Clock

__all__ = [
    "OUTCOMES",
    "REGISTRY",
    "MetricsRoute",
    "count_delivery",
    "platform_label",
    "refusal_outcome",
    "scrape",
]

OUTCOMES = (
    "queued",
    "duplicate",
    "handshake",
    "bad_signature",
    "stale",
    "unauthenticated",
    "too_large",
    "malformed",
    "unavailable",
    "unknown_platform",
)
# Acknowledgements are meant to take milliseconds; Slack's deadline is 3 s.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)

REGISTRY = CollectorRegistry(auto_describe=True)
DELIVERIES = Counter(
    "gateway_deliveries",
    "Webhook deliveries the web app answered, by platform and outcome.",
    ["platform", "outcome"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "gateway_ack_seconds",
    "Seconds from a delivery's first byte to its answer, by platform.",
    ["platform"],
    buckets=ACK_BUCKETS,
    registry=REGISTRY,
)
_QUEUED = Gauge("gateway_queue_depth", "Jobs waiting in the queue.", registry=REGISTRY)
_OLDEST = Gauge(
    "gateway_queue_oldest_age_seconds", "Age of the job at the queue's head (0: empty).", registry=REGISTRY
)
_RUNNING = Gauge("gateway_runs_in_flight", "Runs started and not ended, all workers.", registry=REGISTRY)
_RETRYING = Gauge("gateway_runs_retrying", "Runs waiting for a retry, all workers.", registry=REGISTRY)
_FAILED = Gauge("gateway_runs_failed_kept", "Runs in the failed registry.", registry=REGISTRY)
_WORKERS = Gauge("gateway_workers_alive", "Workers whose lease is alive.", registry=REGISTRY)
_REDIS_UP = Gauge("gateway_redis_up", "1 when Redis answered this scrape.", registry=REGISTRY)
_MODEL_UP = Gauge(
    "gateway_model_server_up", "1 when the model server answered the last probe.", registry=REGISTRY
)


def platform_label(name: str) -> str:
    """``name`` when it is a platform we know, else ``unknown``: never a label from the URL."""
    return name if name in PLATFORMS or name == "api" else "unknown"


def scrape(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """``registry`` in the format the scraper's ``Accept`` asks for (Prometheus text 0.0.4 by
    default, OpenMetrics on request), and its content type."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


def count_delivery(platform: str, outcome: str, seconds: float) -> None:
    """Count one answered delivery and its acknowledgement time."""
    label = platform_label(platform)
    DELIVERIES.labels(label, outcome if outcome in OUTCOMES else "malformed").inc()
    ACK_SECONDS.labels(label).observe(seconds)


# The outcome label of a refused delivery, by the error's kind; the first match wins.
_REFUSALS: tuple[tuple[type[GatewayError], str], ...] = (
    (InvalidSignature, "bad_signature"),
    (StaleTimestamp, "stale"),
    (Unauthenticated, "unauthenticated"),
    (BodyTooLarge, "too_large"),
    (QueueUnavailable, "unavailable"),
    (UnknownPlatform, "unknown_platform"),
    (MalformedPayload, "malformed"),
)


def refusal_outcome(exc: GatewayError) -> str:
    """The ``outcome`` label counting a delivery refused with ``exc``."""
    return next((label for kind, label in _REFUSALS if isinstance(exc, kind)), "malformed")


class MetricsRoute:
    """``GET /metrics``: the web app's metrics and the shared figures, read from Redis now."""

    def __init__(
        self,
        access: MetricsAccess,
        *,
        queue_name: str,
        redis: Callable[[], aioredis.Redis],
        clock: Clock,
    ) -> None:
        self.access = access
        self.queue_name = queue_name
        self._redis = redis
        self._clock = clock

    async def endpoint(self, request: Request) -> Response:
        """The route's endpoint: the scrape, or the refusal ``GATEWAY_METRICS`` calls for."""
        peer = request.client.host if request.client else None
        refusal = self.access.refusal(peer, {k.lower(): v for k, v in request.headers.items()})
        if refusal is not None:
            raise refusal
        await self._read_figures()
        body, content_type = scrape(REGISTRY, request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    async def _read_figures(self) -> None:
        try:
            figures = await read_figures(self._redis(), self.queue_name, now=self._clock())
        except (TimeoutError, redis.RedisError, OSError):
            _REDIS_UP.set(0)
            return
        _REDIS_UP.set(1)
        _show(figures)


def _show(figures: Figures) -> None:
    _QUEUED.set(figures.queued)
    _OLDEST.set(figures.oldest_queued_age or 0.0)
    _RUNNING.set(figures.running)
    _RETRYING.set(figures.retrying)
    _FAILED.set(figures.failed)
    _WORKERS.set(figures.workers.alive)
    if figures.model is not None:
        _MODEL_UP.set(1 if figures.model.get("status") == "ok" else 0)
