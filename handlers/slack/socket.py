"""``gateway socket``: Slack's Socket Mode connection as a second ingress, with no public URL.

Slack pushes the same deliveries it would POST to ``/webhooks/slack`` over a WebSocket the app
opens with its app-level token (``SLACK_APP_TOKEN``, ``xapp-...``, scope ``connections:write``):
https://api.slack.com/apis/socket-mode. Each envelope is parsed by the web side's Slack module
(``parse_socket_envelope``: the same ids, event names and ``meta`` as HTTP) and claimed and
queued by the same ``Enqueuer`` Lua script, so a delivery that arrives both ways, or twice, runs
once. The envelope is acknowledged on the socket only after Redis confirmed claim and job; when
Redis cannot, no acknowledgement is sent and Slack delivers the envelope again (to this
connection or another). A payload that can never be queued (malformed) is acknowledged, so Slack
stops resending it, and logged as refused.

slack-sdk's built-in client (no extra dependency) holds the connection: it answers Slack's
``hello`` and ``disconnect`` frames, pings, and reconnects by itself. Several ``gateway socket``
processes may run at once (Slack spreads envelopes over up to 10 connections); the claim keeps
their deliveries apart. The SDK calls ``on_request`` from its worker threads; the claim runs on
one asyncio loop in a thread of its own, so concurrent envelopes share Redis round trips as HTTP
requests do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from gateway import logs, tracing
from gateway.errors import ConfigError, MalformedPayload, QueueUnavailable
from gateway.platforms import slack
from gateway.platforms.slack.inbound import SOCKET_ENVELOPE_TYPES, parse_socket_envelope
from gateway.queue import Enqueuer, envelope_for, to_job_id
from gateway.types import Clock, Handshake
from handlers import clients
from handlers.config import WorkerSettings

__all__ = ["Ack", "SocketIngress", "socket_main"]

logger = logging.getLogger("gateway.delivery")

# Long enough for the enqueuer's own Redis retries, short of Slack's 3 s acknowledgement window.
CLAIM_TIMEOUT = 2.5
_SOCKET_SPAN: dict[str, tracing.AttributeValue] = {"gateway.platform": "slack", "gateway.transport": "socket"}
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Ack:
    """The acknowledgement to send for one envelope; ``payload`` only where Slack shows it."""

    envelope_id: str
    payload: dict[str, Any] | None = None


class SocketIngress:
    """Claims and queues Socket Mode envelopes on its own event loop; ``receive`` is thread-safe."""

    def __init__(self, settings: WorkerSettings, *, clock: Clock = time.time) -> None:
        self._settings = settings.base
        self._clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="socket-claims", daemon=True)
        self._enqueuer: Enqueuer | None = None

    def start(self) -> None:
        """Start the loop and its Redis client (the enqueuer is bound to the loop that made it)."""
        self._thread.start()
        self._enqueuer = asyncio.run_coroutine_threadsafe(self._make_enqueuer(), self._loop).result()

    def stop(self) -> None:
        """Let claims in flight finish, close Redis and stop the loop."""
        if self._enqueuer is not None:
            asyncio.run_coroutine_threadsafe(self._enqueuer.aclose(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _make_enqueuer(self) -> Enqueuer:
        s = self._settings
        return Enqueuer(
            s.redis_url, queue_name=s.queue_name, dedupe_ttl=s.dedupe_ttl, run_deadline=s.run_deadline
        )

    def on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        """The SDK's request listener: acknowledge the envelope once it is safely queued."""
        ack = self.receive(request)
        if ack is not None:
            client.send_socket_mode_response(SocketModeResponse(ack.envelope_id, payload=ack.payload))

    def receive(self, request: SocketModeRequest) -> Ack | None:
        """Claim and queue one envelope; the ``Ack`` to send, or ``None`` to let Slack resend it.

        With tracing on, inside the ingress span (a consumer span: the envelope came over the socket).
        """
        log: dict[str, Any] = {"platform": "slack", "transport": "socket", "envelope_id": request.envelope_id}
        with tracing.span("receive slack socket", kind="consumer", attributes=_SOCKET_SPAN) as span:
            ack = self._receive_logged(request, log)
            span.set({"gateway.acknowledged": ack is not None, **_span_ids(log)})
            if ack is None:
                span.fail(QueueUnavailable.__name__)
            return ack

    def _receive_logged(self, request: SocketModeRequest, log: dict[str, Any]) -> Ack | None:
        started = time.perf_counter()
        if request.retry_attempt:
            log.update(retry_num=request.retry_attempt, retry_reason=request.retry_reason)
        try:
            return self._receive(request, log, started)
        except MalformedPayload as exc:
            _write_log(log, started, outcome="rejected", reason=str(exc))
            return Ack(request.envelope_id)
        except QueueUnavailable as exc:
            _write_log(log, started, outcome="unavailable", reason=str(exc))
            return None

    def _receive(self, request: SocketModeRequest, log: dict[str, Any], started: float) -> Ack:
        if request.type not in SOCKET_ENVELOPE_TYPES:
            raise MalformedPayload(f"unsupported Socket Mode envelope type {request.type!r}")
        delivery = parse_socket_envelope(
            request.type,
            request.payload,
            retry_attempt=request.retry_attempt,
            retry_reason=request.retry_reason,
        )
        if isinstance(delivery, Handshake):
            log["event"] = delivery.event
            _write_log(log, started, outcome="handshake")
            return Ack(request.envelope_id)
        job_id = to_job_id(slack.name, delivery.delivery_id)
        envelope = envelope_for(slack.name, delivery, received_at=self._clock())
        if (trace := tracing.carrier()) is not None:
            envelope["trace"] = trace  # the ingress span: the run's parent
        log.update(
            event=delivery.event, action=delivery.action, delivery_id=delivery.delivery_id, job_id=job_id
        )
        queued = self._claim(job_id, envelope)
        _write_log(log, started, outcome="queued" if queued else "duplicate")
        shown = delivery.ack if request.accepts_response_payload else None
        return Ack(request.envelope_id, shown)

    def _claim(self, job_id: str, envelope: Any) -> bool:
        if self._enqueuer is None:
            raise RuntimeError("SocketIngress.start() was not called")
        future = asyncio.run_coroutine_threadsafe(
            self._enqueuer.submit(job_id, slack.job_path, envelope), self._loop
        )
        try:
            return future.result(timeout=CLAIM_TIMEOUT)
        except FutureTimeout:
            future.cancel()
            raise QueueUnavailable(f"no answer from Redis within {CLAIM_TIMEOUT:g}s") from None


def _span_ids(log: dict[str, Any]) -> dict[str, tracing.AttributeValue]:
    return {f"gateway.{key}": log[key] for key in ("event", "job_id") if log.get(key)}


def _write_log(log: dict[str, Any], started: float, *, outcome: str, reason: str | None = None) -> None:
    fields = {key: value for key, value in log.items() if not key.startswith("_")}
    fields.update(outcome=outcome, duration_ms=round((time.perf_counter() - started) * 1000, 3))
    if reason is not None:
        fields["reason"] = reason
    level = logging.INFO if outcome in ("queued", "duplicate", "handshake") else logging.WARNING
    logs.log_fields(logger, level, f"delivery {outcome}", fields)


def socket_main(argv: list[str]) -> int:
    """``gateway socket``: hold a Socket Mode connection until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="gateway socket",
        description="Receive Slack deliveries over Socket Mode (SLACK_APP_TOKEN) and queue them.",
    )
    try:
        parser.parse_args(argv)
        settings = WorkerSettings.from_environ()
        token = _app_token(settings)
    except ConfigError as exc:
        return _error(str(exc), EXIT_USAGE)
    logs.configure(settings.base.log_level)
    ingress = SocketIngress(settings)
    try:
        ingress.start()
    except (OSError, QueueUnavailable) as exc:
        return _error(f"REDIS_URL: cannot reach Redis: {type(exc).__name__}", EXIT_FAILURE)
    tracing.start(settings.base.tracing, service="gateway-socket")
    try:
        return _run(ingress, _client(settings, token))
    finally:
        ingress.stop()
        tracing.flush()


def _app_token(settings: WorkerSettings) -> str:
    token = settings.slack.app_token
    if not token:
        raise ConfigError("SLACK_APP_TOKEN", "is not set: Socket Mode needs the app-level token (xapp-...)")
    return token


def _client(settings: WorkerSettings, token: str) -> SocketModeClient:
    web = WebClient(base_url=settings.slack.api_url, timeout=clients.SDK_TIMEOUT_SECONDS, retry_handlers=[])
    return SocketModeClient(app_token=token, web_client=web, logger=logging.getLogger("gateway.socket"))


def _run(ingress: SocketIngress, client: SocketModeClient) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client.socket_mode_request_listeners.append(ingress.on_request)
    try:
        client.connect()
    except SlackApiError as exc:
        refusal = exc.response.get("error")
        return _error(f"SLACK_APP_TOKEN: Slack refused apps.connections.open: {refusal}", EXIT_USAGE)
    except (SlackClientError, OSError) as exc:
        return _error(
            f"SLACK_API_URL: cannot open a Socket Mode connection: {type(exc).__name__}", EXIT_FAILURE
        )
    logging.getLogger("gateway.socket").info("Socket Mode connected; acknowledging after Redis confirms")
    stop.wait()
    client.close()
    return EXIT_OK


def _error(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
