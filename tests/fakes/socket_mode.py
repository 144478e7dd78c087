"""A fake Slack Socket Mode server: a real WebSocket server on 127.0.0.1 (``websockets``' sync server).

What Slack does (https://api.slack.com/apis/socket-mode, the protocol python-slack-sdk's own
``tests/slack_sdk/socket_mode/mock_socket_mode_server.py`` speaks; rules in tests/fakes/README.md):

- a client gets a one-time URL from ``apps.connections.open`` (``SlackFake`` answers it with
  ``issue_url``) and connects to it; an unknown or used ticket is refused at the handshake;
- the first frame on a new connection is ``hello``;
- each envelope goes to one connection: ``{envelope_id, type, payload, accepts_response_payload,
  retry_attempt, retry_reason}``; the app acknowledges with ``{"envelope_id": ...}``, with a
  ``payload`` only where ``accepts_response_payload`` is true, once;
- an envelope not acknowledged within ``ack_timeout`` seconds is sent again (``retry_attempt`` + 1,
  ``retry_reason`` ``timeout``) on any open connection, up to ``max_retries`` times;
- ``disconnect`` frames ask the client to reconnect; Slack then closes the old connection.

Breaches of the protocol by the client are collected in ``violations`` (tests assert it empty).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

HOST = "127.0.0.1"
APP_ID = "A0FAKEAPP"
DEFAULT_APP_TOKEN = "xapp-1-A0FAKEAPP-1-fakeapptoken"
_TICK = 0.05


@dataclass
class Sent:
    """One envelope and what became of it."""

    envelope: dict[str, Any]
    sent_at: float
    attempts: int = 1
    acks: list[dict[str, Any]] = field(default_factory=list)


class SocketModeFake:
    """Socket Mode at ``ws://127.0.0.1:<port>/link/?ticket=...``; ``send`` pushes an envelope."""

    def __init__(
        self,
        *,
        app_tokens: tuple[str, ...] = (DEFAULT_APP_TOKEN,),
        ack_timeout: float = 3.0,
        max_retries: int = 3,
    ) -> None:
        self.app_tokens = app_tokens
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.violations: list[str] = []
        self.connections_opened = 0
        self._cond = threading.Condition()
        self._tickets: set[str] = set()
        self._open: list[ServerConnection] = []
        self._sent: dict[str, Sent] = {}
        self._turn = itertools.count()
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1; redeliver unacknowledged envelopes in the background."""
        self._server = serve(
            self._serve, HOST, 0, process_request=self._check_ticket, compression=None, ping_interval=None
        )
        for target in (self._server.serve_forever, self._redeliver):
            thread = threading.Thread(target=target, name=f"socket-fake-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._server is not None, "not started"
        return int(self._server.socket.getsockname()[1])

    # -- apps.connections.open ------------------------------------------------------------------

    def issue_url(self) -> str:
        """A fresh one-time WebSocket URL, as ``apps.connections.open`` returns."""
        ticket = uuid.uuid4().hex
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://{HOST}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"

    # -- driving ----------------------------------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], *, timeout: float = 10.0) -> str:
        """Push one envelope (``events_api``, ``slash_commands``, ``interactive``) to one connection.

        Waits up to ``timeout`` for a connection; returns the envelope id.
        """
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": payload,
        }
        connection = self.wait_connected(timeout=timeout)
        with self._cond:
            self._sent[envelope["envelope_id"]] = Sent(envelope, time.monotonic())
        self._push(connection, envelope)
        return str(envelope["envelope_id"])

    def disconnect(self, reason: str = "refresh_requested", *, close_after: float = 1.0) -> None:
        """Send ``disconnect`` on every open connection, then close them ``close_after`` s later."""
        with self._cond:
            open_now = list(self._open)
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        for connection in open_now:
            self._push(connection, frame)
        timer = threading.Timer(close_after, lambda: [c.close() for c in open_now])
        timer.daemon = True
        timer.start()

    def drop_connections(self) -> None:
        """Close every open connection without warning (a network cut)."""
        with self._cond:
            open_now = list(self._open)
        for connection in open_now:
            connection.close()

    # -- inspection -------------------------------------------------------------------------------

    def sent(self, envelope_id: str) -> Sent:
        """What became of one envelope (a copy)."""
        with self._cond:
            found = self._sent[envelope_id]
            return Sent(dict(found.envelope), found.sent_at, found.attempts, list(found.acks))

    def wait_acked(self, envelope_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """The acknowledgement of ``envelope_id``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._sent[envelope_id].acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{envelope_id} not acknowledged within {timeout}s")
                self._cond.wait(min(left, 0.2))
            return dict(self._sent[envelope_id].acks[0])

    def wait_connected(self, *, count: int = 1, timeout: float = 10.0) -> ServerConnection:
        """An open connection once at least ``count`` are open."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._open) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} Socket Mode connection(s) not open within {timeout}s")
                self._cond.wait(min(left, 0.2))
            return self._open[next(self._turn) % len(self._open)]

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        with self._cond:
            return len(self._open)

    # -- the server -------------------------------------------------------------------------------

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        split = urlsplit(request.path)
        ticket = (parse_qs(split.query).get("ticket") or [""])[0]
        with self._cond:
            if split.path.rstrip("/") != "/link" or ticket not in self._tickets:
                return connection.respond(401, "invalid or used ticket\n")
            self._tickets.discard(ticket)  # a URL from apps.connections.open works once
        return None

    def _serve(self, connection: ServerConnection) -> None:
        with self._cond:
            self._open.append(connection)
            self.connections_opened += 1
            count = len(self._open)
            self._cond.notify_all()
        hello = {
            "type": "hello",
            "num_connections": count,
            "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }
        try:
            connection.send(json.dumps(hello))
            for message in connection:
                self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self._open.remove(connection)
                self._cond.notify_all()

    def _receive(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            self.violations.append(f"not JSON: {message!r:.80}")
            return
        envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
        with self._cond:
            sent = self._sent.get(str(envelope_id))
            if sent is None:
                self.violations.append(f"acknowledged an envelope never sent: {frame!r:.120}")
            elif sent.acks:
                self.violations.append(f"acknowledged {envelope_id} twice")
            elif "payload" in frame and not sent.envelope["accepts_response_payload"]:
                self.violations.append(f"payload on the ack of {sent.envelope['type']} {envelope_id}")
            else:
                sent.acks.append(frame)
            self._cond.notify_all()

    def _push(self, connection: ServerConnection, frame: dict[str, Any]) -> None:
        try:
            connection.send(json.dumps(frame))
        except ConnectionClosed:
            pass  # not acknowledged, so redelivered on another connection

    def _redeliver(self) -> None:
        while not self._stopping.wait(_TICK):
            now = time.monotonic()
            with self._cond:
                due = [
                    sent
                    for sent in self._sent.values()
                    if not sent.acks
                    and sent.attempts <= self.max_retries
                    and now - sent.sent_at > self.ack_timeout
                ]
                targets = list(self._open)
                for sent in due if targets else []:
                    sent.envelope = {
                        **sent.envelope,
                        "retry_attempt": sent.attempts,
                        "retry_reason": "timeout",
                    }
                    sent.attempts += 1
                    sent.sent_at = now
            for sent in due if targets else []:
                self._push(targets[next(self._turn) % len(targets)], sent.envelope)

    def _is_due(self, sent: Sent, now: float) -> bool:
        unanswered = not sent.acks and sent.attempts <= self.max_retries
        return unanswered and now - sent.sent_at > self.ack_timeout
