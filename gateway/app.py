"""The ASGI app: ``POST /webhooks/<platform>``, ``GET /health``, the runs API, the console and the
platforms' own routes (Slack's OAuth install flow).

The request path does only this: read the capped body, answer an unsigned probe, verify the
signature, answer a handshake, parse, claim and enqueue, answer. Everything slow runs in the
workers. The webhook endpoint is a plain ASGI callable, and ``GatewayApp`` hands webhook POSTs
to it directly: it is the hot path, and Starlette's Request and Response objects, middleware
and routing were a large share of what it cost beyond reading the body. Errors become
statuses in one place, ``_ERRORS``, used by ``_refuse`` (which also writes the delivery's log
line for refused requests) and by the exception handler of every other route. The runs API
(``gateway.api``) and the console (``gateway.console``) are on when ``GATEWAY_API_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import orjson
import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import logs, runs, tracing
from gateway.alerts import WebAlerts
from gateway.api import Api
from gateway.auth import ApiAuth
from gateway.config import Settings
from gateway.console import Console
from gateway.deliveries import DeliveryLog
from gateway.errors import (
    BadRequest,
    BodyTooLarge,
    Conflict,
    Forbidden,
    GatewayError,
    InvalidSignature,
    MalformedPayload,
    NotAuthorized,
    NotFound,
    QueueUnavailable,
    Unauthenticated,
    UnknownPlatform,
)
from gateway.health import Figures, read_figures
from gateway.metrics import MetricsRoute, count_delivery, platform_label, refusal_outcome
from gateway.platforms import PLATFORMS
from gateway.queue import REDIS_TIMEOUT, Enqueuer, envelope_for, to_job_id
from gateway.stream import StreamHub
from gateway.types import Clock, Delivery, Handshake, Platform

logger = logging.getLogger("gateway.delivery")
T = TypeVar("T")

_WEBHOOKS = "/webhooks/"
TRACE_FLUSH_TIMEOUT = 5.0

# Each refused request gets its status and a body that says what kind of problem it was;
# for signature problems the body stays generic and the reason goes only to the log.
_ERRORS: list[tuple[type[GatewayError], int, str]] = [
    (UnknownPlatform, 404, "unknown platform"),
    (BodyTooLarge, 413, "body too large"),
    (Unauthenticated, 401, "invalid request"),
    (MalformedPayload, 400, "malformed payload"),
    (QueueUnavailable, 503, "temporarily unavailable, retry later"),
    (NotAuthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not found"),
    (Conflict, 409, "conflict"),
    (BadRequest, 400, "bad request"),
]
# API refusals say why; a webhook's signature refusal never does (only its log line).
_DETAILED = (MalformedPayload, NotAuthorized, Forbidden, NotFound, Conflict, BadRequest)


__all__ = ["GatewayApp", "create_app"]


def create_app(settings: Settings | None = None, *, clock: Clock = time.time) -> GatewayApp:
    """Build the app; settings default to the environment, the clock to ``time.time``."""
    settings = settings or Settings.from_environ()
    runs.set_retention(settings.run_retention)
    return GatewayApp(settings, clock=clock)


class GatewayApp:
    """The ASGI app: webhook POSTs go straight to their endpoint, the rest through Starlette.

    ``POST /webhooks/<platform>`` is nearly all the traffic, and Starlette's error middleware,
    exception middleware and router cost it more than a tenth of its time while adding nothing
    it uses (the endpoint answers every error itself). So those requests skip them.
    ``GET /health``, the lifespan, 404s and 405s, and requests under a ``root_path``, go through
    Starlette, whose routes include the webhook endpoint too.
    """

    def __init__(self, settings: Settings, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self._gateway = gateway = _Gateway(settings, clock)
        auth = ApiAuth(settings.api_tokens)
        own = [route for p in PLATFORMS.values() for route in p.web_routes(settings, self._redis)]
        api = Api(
            auth,
            queue_name=settings.queue_name,
            connection=gateway.reader,
            enqueuer=lambda: gateway.enqueuer,
            hub=lambda: gateway.hub,
        )
        metrics = MetricsRoute(
            settings.metrics, queue_name=settings.queue_name, redis=self._redis, clock=gateway.clock
        )
        self._starlette = Starlette(
            routes=[
                Route("/webhooks/{platform}", gateway, methods=["POST"]),
                Route("/health", gateway.health, methods=["GET"]),
                Route("/metrics", metrics.endpoint, methods=["GET"]),
                *api.routes(),
                *Console(auth, gateway.reader).routes(),
                *own,
            ],
            exception_handlers={GatewayError: _error_response},
            lifespan=gateway.lifespan,
        )

    def _redis(self) -> aioredis.Redis:
        return self._gateway.enqueuer.redis

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Start and stop what the app holds (its Redis client), as an ASGI server's lifespan does."""
        return self._gateway.lifespan(self._starlette)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        platform = _webhook_platform(scope)
        if platform is None:
            await self._starlette(scope, receive, send)
        else:
            await self._gateway.webhook(platform, scope, receive, send)


def _webhook_platform(scope: Scope) -> str | None:
    """``<platform>`` for ``POST /webhooks/<platform>`` with no ``root_path``; None otherwise."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(_WEBHOOKS):
        return None
    platform = path[len(_WEBHOOKS) :]
    return platform if platform and "/" not in platform else None


class _Gateway:
    """The endpoints, holding the settings, the clock and (while running) the enqueuer."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.platforms = {name: PLATFORMS[name] for name in settings.enabled_platforms}
        # Resolved once: the request path only looks them up.
        self._secrets = {name: settings.signing_secrets(name) for name in self.platforms}
        self._caps = {name: settings.max_body(name) for name in self.platforms}
        # Reads of run state (API, console) run in threads on a client of their own.
        self.reader = redis.Redis.from_url(
            settings.redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._enqueuer: Enqueuer | None = None
        self._deliveries: DeliveryLog | None = None
        self._alerts: WebAlerts | None = None
        self._hub: StreamHub | None = None
        self._tracer = tracing.start(settings.tracing, service="gateway")

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        s = self.settings
        self._enqueuer = Enqueuer(
            s.redis_url,
            queue_name=s.queue_name,
            dedupe_ttl=s.dedupe_ttl,
            run_deadline=s.run_deadline,
            run_retention=s.run_retention,
        )
        self._deliveries = DeliveryLog(self._enqueuer.redis)
        self._alerts = WebAlerts(self._enqueuer.redis, clock=time.monotonic)
        # The hub's blocking read holds a connection of its own.
        hub_redis = aioredis.Redis.from_url(
            s.redis_url, socket_timeout=10, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._hub = StreamHub(hub_redis)
        try:
            yield
        finally:
            if self._tracer is not None:
                await asyncio.to_thread(self._tracer.flush, TRACE_FLUSH_TIMEOUT)
            await self._hub.aclose()
            await hub_redis.aclose()
            await self._deliveries.aclose()
            await self._alerts.aclose()
            await self._enqueuer.aclose()
            self.reader.close()

    @property
    def enqueuer(self) -> Enqueuer:
        """The claim-and-enqueue batcher (while the lifespan runs)."""
        return _started(self._enqueuer)

    @property
    def hub(self) -> StreamHub:
        """The process's follower of run events (while the lifespan runs)."""
        return _started(self._hub)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The webhook endpoint as a Starlette route."""
        await self.webhook(scope["path_params"]["platform"], scope, receive, send)

    async def webhook(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /webhooks/<name>``: verify, claim and queue one delivery, then answer.

        With tracing on, inside the ingress span (``GATEWAY_TRACING``); off, one check.
        """
        if self._tracer is None:
            await self._webhook(name, scope, receive, send)
            return
        with self._tracer.span(
            tracing.INGRESS_SPAN, kind="server", parent=None, attributes=tracing.INGRESS_ATTRIBUTES
        ) as span:
            status, outcome, log = await self._webhook(name, scope, receive, send)
            event, job_id = log.get("event"), log.get("job_id")
            span.set(tracing.answered(platform_label(name), status, outcome, event=event, job_id=job_id))
            if status >= 500:  # a server span's 4xx is the sender's problem, not an error
                span.fail(str(status))

    async def _webhook(
        self, name: str, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, str, dict[str, Any]]:
        started = time.perf_counter()
        headers = _headers(scope)
        log: dict[str, Any] = {"platform": name[:40], "_started": started}
        try:
            status, body = await self._handle(name, receive, headers, log)
            counted = log["_outcome"]
        except GatewayError as exc:
            status, body, fields = _refuse(exc, log)
            counted = refusal_outcome(exc)
            self._notice(name, exc)
            if not isinstance(exc, QueueUnavailable):  # Redis cannot take the line either
                self._record(fields)
        await _answer(send, status, body, outcome=log.get("_outcome"))
        count_delivery(name, counted, time.perf_counter() - started)
        return status, counted, log

    def _notice(self, name: str, exc: GatewayError) -> None:
        """What an operator may need to hear about (``gateway.alerts``)."""
        if self._alerts is None:
            return
        if isinstance(exc, InvalidSignature):
            self._alerts.signature_refused(name)
        elif isinstance(exc, QueueUnavailable):
            self._alerts.redis_failed()

    def _record(self, fields: dict[str, Any]) -> None:
        if self._deliveries is not None:
            self._deliveries.record(fields)

    async def _handle(
        self, name: str, receive: Receive, headers: dict[str, str], log: dict[str, Any]
    ) -> tuple[int, bytes]:
        platform = self.platforms.get(name)
        if platform is None:
            raise UnknownPlatform(name[:40])
        log.update(platform.log_fields(headers))
        body = await _read_body(receive, headers, self._caps[name])
        probe = platform.probe(body, headers)
        if probe is None:
            platform.verify(body, headers, secrets=self._secrets[name], now=self.clock())
        result = probe or platform.parse(body, headers)
        if isinstance(result, Handshake):
            log["event"] = result.event
            self._record(_write_log(log, outcome="handshake", status=200))
            return 200, orjson.dumps(result.answer)
        return await self._enqueue(platform, result, log)

    async def _enqueue(
        self, platform: Platform, delivery: Delivery, log: dict[str, Any]
    ) -> tuple[int, bytes]:
        envelope = envelope_for(platform.name, delivery, received_at=self.clock())
        if self._tracer is not None:
            envelope["trace"] = self._tracer.carrier()  # the ingress span: the run's parent
        job_id = to_job_id(platform.name, delivery.delivery_id)
        log.update(
            event=delivery.event, action=delivery.action, delivery_id=delivery.delivery_id, job_id=job_id
        )
        queued = await self.enqueuer.submit(job_id, platform.job_path, envelope)
        if self._alerts is not None:
            self._alerts.redis_answered()
        self._record(_write_log(log, outcome="queued" if queued else "duplicate", status=200))
        return 200, b"" if delivery.ack is None else orjson.dumps(delivery.ack)

    async def health(self, request: Request) -> Response:
        """``GET /health``: 503 only when deliveries cannot be accepted (Redis); else the figures,
        and ``degraded`` with the problems when no worker is alive or the model server is not."""
        try:
            figures = await read_figures(
                self.enqueuer.redis, self.settings.queue_name, now=self.clock(), platforms=self.platforms
            )
        except (TimeoutError, redis.RedisError, OSError):
            return JSONResponse({"status": "unavailable", "redis": "unreachable"}, status_code=503)
        problems = _problems(figures)
        return JSONResponse(
            {
                "status": "degraded" if problems else "ok",
                "redis": "ok",
                "queue": self.settings.queue_name,
                **figures.as_health(),
                "platforms": list(self.platforms),
                **({"problems": problems} if problems else {}),
            }
        )


def _problems(figures: Figures) -> list[str]:
    """What keeps queued deliveries from being answered, each with what to do."""
    found = []
    if figures.workers.alive == 0:
        found.append("no worker is alive: start `gateway worker` (deliveries wait in the queue)")
    if figures.model is not None and figures.model.get("status") != "ok":
        found.append(f"the model server did not answer the last probe: {figures.model.get('detail', '')}")
    return found


def _headers(scope: Scope) -> dict[str, str]:
    """Header names (lower-case, as ASGI gives them) to values; the first of repeated names wins."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The raw body, refused with ``BodyTooLarge`` as soon as it passes ``limit`` bytes."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedPayload("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _refuse(exc: GatewayError, log: dict[str, Any]) -> tuple[int, bytes, dict[str, Any]]:
    """The status and JSON body for a refused request, and its log line (written, and returned)."""
    status, body = _status_and_body(exc)
    fields = _write_log(
        log, outcome="unavailable" if status == 503 else "rejected", status=status, reason=str(exc)
    )
    return status, body, fields


def _status_and_body(exc: GatewayError) -> tuple[int, bytes]:
    for kind, status, message in _ERRORS:
        if isinstance(exc, kind):
            detail = {"detail": str(exc)} if isinstance(exc, _DETAILED) else {}
            return status, orjson.dumps({"error": message, **detail})
    raise exc


async def _error_response(request: Request, exc: Exception) -> Response:
    """Every route but the webhook's: a ``GatewayError`` as its status and JSON body."""
    assert isinstance(exc, GatewayError)
    status, body = _status_and_body(exc)
    return Response(body, status_code=status, media_type="application/json")


def _started(value: T | None) -> T:
    if value is None:
        raise RuntimeError("the app's lifespan has not started; run it under a server or `with TestClient`")
    return value


async def _answer(send: Send, status: int, body: bytes, *, outcome: str | None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if outcome is not None:
        # What the delivery's log line says (queued, duplicate, ...), for `gateway replay`.
        headers.append((b"x-gateway-outcome", outcome.encode()))
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _write_log(
    log: dict[str, Any], *, outcome: str, status: int, reason: str | None = None
) -> dict[str, Any]:
    log["_outcome"] = outcome
    fields = {key: value for key, value in log.items() if not key.startswith("_")}
    fields.update(outcome=outcome, status=status)
    fields["duration_ms"] = round((time.perf_counter() - log["_started"]) * 1000, 3)
    if reason is not None:
        fields["reason"] = reason
    level = logging.INFO if status < 400 else logging.ERROR if status >= 500 else logging.WARNING
    logs.log_fields(logger, level, f"delivery {outcome}", fields)
    return fields
