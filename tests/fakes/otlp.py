"""A fake OpenTelemetry collector: OTLP/HTTP traces on 127.0.0.1, decoded and kept for assertions.

It answers ``POST /v1/traces`` as the OTLP specification says a server must
(https://github.com/open-telemetry/opentelemetry-proto/blob/main/docs/specification.md, "OTLP/HTTP"):
binary protobuf only (``Content-Type: application/x-protobuf``; JSON, which a real collector also
takes, gets 415: our exporter never sends it), ``Content-Encoding`` gzip or deflate, a body that
decodes as an ``ExportTraceServiceRequest`` whose spans have valid ids (16-byte trace id,
8-byte span id, neither all zeroes; parent id empty or 8 bytes: ``trace.proto``) and a name;
otherwise 400 with a ``google.rpc.Status``. Success is 200 with an empty
``ExportTraceServiceResponse`` (``partial_success`` unset) in protobuf.

``python -m tests.fakes.otlp`` serves one on a free port until SIGTERM, printing its URL first
(the ingress benchmark uses it); ``GET /_count`` answers how many spans it took.
"""

from __future__ import annotations

import gzip
import signal
import sys
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.fakes.server import FakeServer, Reply, Request, Route, route

__all__ = ["PROTOBUF", "ExportedSpan", "OtlpCollector", "main"]

PROTOBUF = "application/x-protobuf"
_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "unspecified",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
_STATUSES = {0: "unset", 1: "ok", 2: "error"}


@dataclass(frozen=True)
class ExportedSpan:
    """One span as the collector received it; ids in lower-case hex, ``parent_id`` ``""`` for a root."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    service: str
    scope: str
    start_ns: int = 0
    end_ns: int = 0
    events: tuple[str, ...] = field(default=())


class OtlpCollector(FakeServer):
    """``endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` should be; ``spans()`` what arrived."""

    def __init__(self) -> None:
        self._spans: list[ExportedSpan] = []
        super().__init__()

    @property
    def endpoint(self) -> str:
        """The base URL the exporter appends ``/v1/traces`` to."""
        return self.origin

    def routes(self) -> Iterable[Route]:
        """The traces endpoint, and the span count for scripts."""
        return [route("POST", "/v1/traces", self._export), route("GET", "/_count", self._count)]

    def reset_state(self) -> None:
        """Forget the spans."""
        self._spans.clear()

    def not_found(self, request: Request) -> Reply:
        """Paths the collector does not serve (``/v1/metrics`` included)."""
        return _status(404, f"no OTLP endpoint at {request.path}")

    def spans(self, predicate: Callable[[ExportedSpan], bool] = lambda span: True) -> list[ExportedSpan]:
        """The spans received so far that match ``predicate``, in arrival order."""
        with self._cond:
            return [span for span in self._spans if predicate(span)]

    def wait_for_spans(
        self, predicate: Callable[[ExportedSpan], bool], *, count: int = 1, timeout: float = 15.0
    ) -> list[ExportedSpan]:
        """Block until ``count`` matching spans arrived; ``TimeoutError`` naming what did arrive."""
        with self._cond:
            if self._cond.wait_for(lambda: len(self.spans(predicate)) >= count, timeout):
                return self.spans(predicate)
            seen = [f"{s.name} ({s.kind})" for s in self._spans]
        raise TimeoutError(f"{count} matching span(s) not exported within {timeout}s; got {seen}")

    def _count(self, request: Request) -> Reply:
        return Reply(200, {"spans": len(self._spans)})

    def _export(self, request: Request) -> Reply:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != PROTOBUF:
            return _status(415, f"unsupported Content-Type {content_type!r}: send {PROTOBUF}")
        raw = _decompressed(request.raw, request.headers.get("content-encoding", "identity"))
        if raw is None:
            return _status(400, "unsupported or broken Content-Encoding")
        try:
            message = ExportTraceServiceRequest.FromString(raw)
        except DecodeError:
            return _status(400, "the body is not an ExportTraceServiceRequest")
        received = list(_flatten(message))
        problem = next((p for p in map(_invalid, received) if p), None)
        if problem is not None:
            return _status(400, problem)
        self._spans.extend(received)
        return Reply(200, ExportTraceServiceResponse().SerializeToString(), {"Content-Type": PROTOBUF})


def _status(code: int, message: str) -> Reply:
    """A failure answer: a ``google.rpc.Status`` in protobuf, as OTLP/HTTP requires."""
    return Reply(code, Status(message=message).SerializeToString(), {"Content-Type": PROTOBUF})


def _decompressed(raw: bytes, encoding: str) -> bytes | None:
    try:
        if encoding in ("", "identity"):
            return raw
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _flatten(message: ExportTraceServiceRequest) -> Iterable[ExportedSpan]:
    for resource_spans in message.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield _span(span, service=str(resource.get("service.name", "")), scope=scope_spans.scope.name)


def _span(span: Span, *, service: str, scope: str) -> ExportedSpan:
    return ExportedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        name=span.name,
        kind=_KINDS.get(span.kind, str(span.kind)),
        attributes={a.key: _value(a.value) for a in span.attributes},
        status=_STATUSES.get(span.status.code, str(span.status.code)),
        service=service,
        scope=scope,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        events=tuple(event.name for event in span.events),
    )


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _invalid(span: ExportedSpan) -> str | None:
    """What ``trace.proto`` calls invalid in a span, or ``None``."""
    if len(span.trace_id) != 32 or set(span.trace_id) == {"0"}:
        return f"span {span.name!r}: the trace id must be 16 bytes, not all zeroes"
    if len(span.span_id) != 16 or set(span.span_id) == {"0"}:
        return f"span {span.name!r}: the span id must be 8 bytes, not all zeroes"
    if span.parent_id and len(span.parent_id) != 16:
        return f"span {span.name!r}: the parent span id must be empty or 8 bytes"
    if not span.name:
        return "a span has no name"
    return None


def main() -> int:
    """Serve on a free port of 127.0.0.1 until SIGTERM or SIGINT; the first line printed is its URL."""
    collector = OtlpCollector()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with collector:
        print(collector.endpoint, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
