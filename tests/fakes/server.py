"""Shared machinery of the fake platform APIs: a real HTTP server on 127.0.0.1 in a background thread.

A fake records every request it receives as a ``Call``, fails the next matching requests when told to
(``fail_next``), and answers the rest through the routes its subclass declares. Requests are handled
one at a time under one lock, so recorded order is arrival order and fake state needs no more locking.
"""

from __future__ import annotations

import fnmatch
import json
import re
import socketserver
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

HOST = "127.0.0.1"
MAX_BODY = 32 * 1024 * 1024
_SOCKET_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_MAX_CHUNKS = 10_000

Params = dict[str, str | list[str]]


@dataclass(frozen=True)
class Call:
    """One request as the fake received it, and the status it answered with."""

    method: str
    path: str  # relative to the fake's prefix (the full path for requests outside it), no query
    target: str  # the request target exactly as sent: full path and query
    query: Params
    headers: dict[str, str]  # names lower-cased
    body: Any  # form -> dict, JSON -> object, anything else -> None
    raw: bytes
    status: int
    faulted: bool = False  # answered by fail_next, not by the fake's logic
    replayed: bool = False  # answered from a stored result (Stripe idempotency)
    at: float = field(default_factory=time.time)


@dataclass
class Request:
    """What a route handler sees."""

    method: str
    path: str
    query: Params
    headers: dict[str, str]
    body: Any
    raw: bytes
    base_url: str  # scheme://host:port + prefix, as the client addressed the fake
    target: str = ""
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """A handler's answer: ``body`` is JSON-encoded unless it is bytes or str."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


Handler = Callable[[Request], Reply]


@dataclass(frozen=True)
class Route:
    """``method`` + path regex -> handler; ``public`` skips the fake's credential check."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool = False
    rooted: bool = False  # matched against the full path, not the path under the prefix


def route(
    method: str, template: str, handler: Handler, *, public: bool = False, rooted: bool = False
) -> Route:
    """A route from a template such as ``/repos/{owner}/{repo}``; each ``{name}`` matches one segment."""
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return Route(method.upper(), re.compile(regex), handler, public, rooted)


@dataclass
class _Fault:
    method: str
    pattern: str
    reply: Reply
    times: int


def is_match(call_method: str, call_path: str, method: str | None, pattern: str | None) -> bool:
    """Whether a request matches a method (None or ``*``: any) and a glob path pattern (None: any)."""
    if method not in (None, "*") and call_method != method.upper():
        return False
    return pattern is None or fnmatch.fnmatchcase(call_path, pattern)


def parse_params(text: str) -> Params:
    """Query-string or form pairs; a name given more than once maps to the list of its values."""
    params: Params = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        old = params.get(name)
        params[name] = value if old is None else [*(old if isinstance(old, list) else [old]), value]
    return params


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON bodies to objects, form bodies to ``Params``, anything else to None."""
    if not raw:
        return None
    if "application/x-www-form-urlencoded" in content_type:
        return parse_params(raw.decode("utf-8", "replace"))
    if "json" in content_type or raw[:1] in (b"{", b"["):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return None


class FakeServer:
    """Base of the fakes: ``start()``/``stop()`` or ``with``, recorded calls and injected faults.

    Subclasses return their routes from ``routes()`` and override ``authenticate``, ``not_found``,
    ``fault_body`` and ``reset_state``.
    """

    def __init__(self, *, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.errors: list[str] = []  # tracebacks of requests the fake itself crashed on
        self._cond = threading.Condition()
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._routes = tuple(self.routes())
        self._httpd: _HTTPServer | None = None
        self._serving: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and serve from a daemon thread; idempotent."""
        if self._httpd is None:
            httpd = _HTTPServer((HOST, 0), _RequestHandler)
            httpd.fake = self
            name = f"{type(self).__name__}-{httpd.server_address[1]}"
            thread = threading.Thread(
                target=httpd.serve_forever, args=(_POLL_INTERVAL,), name=name, daemon=True
            )
            thread.start()
            self._httpd, self._serving = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; idempotent."""
        httpd, thread = self._httpd, self._serving
        self._httpd = self._serving = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the fake listens on (only while started)."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to give the SDK client: the origin plus the prefix."""
        return self.origin + self.prefix

    # -- inspection and control ------------------------------------------------------------------

    def calls(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Recorded calls in arrival order, filtered by method and glob path pattern."""
        with self._cond:
            return [c for c in self._calls if is_match(c.method, c.path, method, path)]

    def wait_for(
        self, method: str | None = None, path: str | None = None, *, count: int = 1, timeout: float = 5.0
    ) -> list[Call]:
        """Block until at least ``count`` matching calls arrived (e.g. from a worker process); return them.

        Raises ``TimeoutError`` listing what did arrive when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while (left := deadline - time.monotonic()) > 0:
                found = self.calls(method, path)
                if len(found) >= count:
                    return found
                self._cond.wait(min(left, 0.5))
            found = self.calls(method, path)
            if len(found) >= count:
                return found
            seen = [f"{c.method} {c.path} -> {c.status}" for c in self._calls]
        raise TimeoutError(
            f"{count} call(s) to {method or '*'} {path or '*'} not seen in {timeout}s; got {seen}"
        )

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and glob ``path_pattern`` with ``status``.

        ``body`` defaults to the platform's own error body for that status; faulted calls are recorded
        with ``faulted=True`` and change no state.
        """
        reply = Reply(status, self.fault_body(status) if body is None else body, dict(headers or {}))
        with self._cond:
            self._faults.append(_Fault(method.upper(), path_pattern, reply, times))

    def reset(self) -> None:
        """Forget calls, pending faults, errors and all state (seeded or created); keep credentials."""
        with self._cond:
            self._calls.clear()
            self._faults.clear()
            self.errors.clear()
            self.reset_state()

    # -- for subclasses --------------------------------------------------------------------------

    def routes(self) -> Iterable[Route]:
        """The routes this fake answers."""
        return ()

    def authenticate(self, request: Request) -> Reply | None:
        """None when the request's credentials are accepted, else the refusal to send."""
        return None

    def not_found(self, request: Request) -> Reply:
        """The answer for a path no route matches."""
        return Reply(404, {"error": "not_found"})

    def fault_body(self, status: int) -> Any:
        """The body ``fail_next`` sends by default for ``status``."""
        return {"error": f"injected {status}"}

    def reset_state(self) -> None:
        """Drop the fake's platform state (called under the lock)."""

    def decorate(self, reply: Reply) -> None:
        """Add the headers every response of the platform carries (called under the lock)."""

    # -- request handling ------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Answer one request and record it; called from the server's request threads."""
        split = urlsplit(target)
        full_path = split.path
        relative = self._relative(full_path)
        host = headers.get("host") or f"{HOST}:{self.port}"
        request = Request(
            method=method,
            path=full_path if relative is None else relative,
            query=parse_params(split.query),
            headers=headers,
            body=parse_body(raw, headers.get("content-type", "")),
            raw=raw,
            base_url=f"http://{host}{self.prefix}",
            target=target,
        )
        with self._cond:
            fault = self._take_fault(request)
            reply = fault if fault is not None else self._answer(request, full_path, relative)
            self.decorate(reply)
            self._record(request, reply, faulted=fault is not None)
        return reply

    def _relative(self, path: str) -> str | None:
        if not self.prefix:
            return path
        if path == self.prefix or path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :] or "/"
        return None

    def _take_fault(self, request: Request) -> Reply | None:
        for fault in self._faults:
            if is_match(request.method, request.path, fault.method, fault.pattern):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return Reply(fault.reply.status, fault.reply.body, dict(fault.reply.headers))
        return None

    def _answer(self, request: Request, full_path: str, relative: str | None) -> Reply:
        try:
            found = self._match(request.method, full_path, relative)
            if found is None or not found[0].public:
                denied = self.authenticate(request)
                if denied is not None:
                    return denied
            if found is None:
                return self.not_found(request)
            request.params = found[1]
            return found[0].handler(request)
        except Exception:
            self.errors.append(traceback.format_exc())
            return Reply(500, {"error": "the fake crashed; see its .errors"})

    def _match(
        self, method: str, full_path: str, relative: str | None
    ) -> tuple[Route, dict[str, str]] | None:
        for candidate in self._routes:
            path = full_path if candidate.rooted else relative
            matched = candidate.pattern.fullmatch(path) if path is not None else None
            if matched is not None and candidate.method == method:
                return candidate, matched.groupdict()
        return None

    def _record(self, request: Request, reply: Reply, *, faulted: bool) -> None:
        call = Call(
            method=request.method,
            path=request.path,
            target=request.target,
            query=request.query,
            headers=request.headers,
            body=request.body,
            raw=request.raw,
            status=reply.status,
            faulted=faulted,
            replayed=reply.replayed,
        )
        self._calls.append(call)
        self._cond.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    fake: FakeServer
    daemon_threads = True
    request_queue_size = 128  # worker processes may post in bursts

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on a bad resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, int(self.server_address[1])


class _RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so stopping leaves no idle keep-alive threads behind."""

    server: _HTTPServer
    timeout = _SOCKET_TIMEOUT

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _serve(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake.handle(self.command, self.path, headers, self._read_body(headers))
        data, content_type = _encode(reply.body)
        self.send_response(reply.status)
        if content_type and not any(name.lower() == "content-type" for name in reply.headers):
            self.send_header("Content-Type", content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = int(headers.get("content-length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        body = bytearray()
        for _ in range(_MAX_CHUNKS):
            size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
            if size == 0 or len(body) + size > MAX_BODY:
                break
            body += self.rfile.read(size)
            self.rfile.readline(10)
        return bytes(body)


def _encode(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json; charset=utf-8"
