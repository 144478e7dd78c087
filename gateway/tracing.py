"""Optional OpenTelemetry traces (``GATEWAY_TRACING``), shared by the web side and the workers.

Off by default. With ``otlp`` each process starts the OpenTelemetry SDK once (``start``), and
spans go to an OTLP/HTTP collector that the SDK's own ``OTEL_*`` variables name. One delivery is
one trace: the ingress span, then each attempt's run span in a worker (its parent travels in the
envelope's ``trace`` field as W3C ``traceparent``/``tracestate``), and under it the model and
tool calls and the reply.

This module never imports ``opentelemetry``: ``gateway.otel`` does, and is loaded only when
tracing starts, so a process without traces (and its ack path) never loads it. The web app asks
``start``'s answer once and checks it per request; the worker side calls ``span``, which costs
a no-op context manager when tracing is off.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.otel import Tracer

__all__ = [
    "EXTRA",
    "INGRESS_ATTRIBUTES",
    "INGRESS_SPAN",
    "MODES",
    "AttributeValue",
    "Kind",
    "Span",
    "answered",
    "carrier",
    "error_type",
    "flush",
    "parent_of",
    "require_packages",
    "span",
    "start",
    "tracer",
]

MODES = ("off", "otlp")
EXTRA = "webhook-agent-gateway[otel]"
"""What to install for ``GATEWAY_TRACING=otlp``."""

# The packages the otel extra brings, as the SDK and exporter modules the tracer needs.
_REQUIRED = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter")
# The envelope's trace field carries the W3C Trace Context headers and nothing else (no baggage).
_CONTEXT_HEADERS = ("traceparent", "tracestate")

AttributeValue = str | bool | int | float | Sequence[str]
"""A span attribute's value, as OpenTelemetry takes it."""

Kind = Literal["server", "client", "consumer", "internal"]
"""OpenTelemetry's span kinds that the gateway uses."""


class Span(Protocol):
    """The span a ``span(...)`` block is in: more attributes, and how it failed."""

    def set(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Add ``attributes``."""

    def fail(self, error_type: str) -> None:
        """Mark the span failed, with ``error.type`` = ``error_type`` (low-cardinality, no details)."""


class _Unrecorded:
    """The span of a ``span(...)`` block while tracing is off: it keeps nothing."""

    __slots__ = ()

    def set(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Nothing is recorded."""

    def fail(self, error_type: str) -> None:
        """Nothing is recorded."""


# The ingress span: named and described as OpenTelemetry's HTTP server conventions say. The
# request's own traceparent, if any, is not followed: webhooks come from outside, so each
# delivery starts its own trace.
_ROUTE = "/webhooks/{platform}"
INGRESS_SPAN = f"POST {_ROUTE}"
INGRESS_ATTRIBUTES: Mapping[str, AttributeValue] = {"http.request.method": "POST", "http.route": _ROUTE}

_OFF: AbstractContextManager[Span] = nullcontext(_Unrecorded())
_TRACER: Tracer | None = None


def require_packages() -> None:
    """Raise ``ConfigError`` on ``GATEWAY_TRACING`` when the otel extra is not installed."""
    for name in _REQUIRED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                "GATEWAY_TRACING",
                f"is otlp but OpenTelemetry is not installed ({exc.name or name} is missing): "
                f"pip install '{EXTRA}'",
            ) from None


def start(mode: str, *, service: str) -> Tracer | None:
    """The process's tracer when ``mode`` is ``otlp`` (started on the first call), else ``None``.

    ``service`` is the ``service.name`` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name one.
    """
    global _TRACER
    if mode != "otlp":
        return None
    if _TRACER is None:
        from gateway import otel  # only now: without traces, opentelemetry is never imported

        _TRACER = otel.Tracer.start(service)
    return _TRACER


def tracer() -> Tracer | None:
    """The process's tracer, or ``None`` when tracing was not started."""
    return _TRACER


def flush(timeout: float = 5.0) -> None:
    """Export the spans still buffered (at shutdown), waiting at most ``timeout`` seconds."""
    if _TRACER is not None:
        _TRACER.flush(timeout)


def span(
    name: str,
    *,
    kind: Kind = "internal",
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> AbstractContextManager[Span]:
    """A span around the ``with`` block, a child of the current span or of ``parent`` (a carrier).

    An exception leaving the block marks the span failed with its ``error_type``. When tracing
    is off this is a shared no-op.
    """
    if _TRACER is None:
        return _OFF
    return _TRACER.span(name, kind=kind, parent=parent, attributes=attributes or {})


def carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers (for a job's envelope); ``None`` when off."""
    return None if _TRACER is None else _TRACER.carrier()


def parent_of(envelope: Mapping[str, Any]) -> dict[str, str]:
    """The ``trace`` carrier of an envelope, only its W3C headers; ``{}`` when it has none
    (envelopes queued without tracing, or by an older release): the run starts a new trace."""
    value = envelope.get("trace")
    if not isinstance(value, Mapping):
        return {}
    return {name: value[name] for name in _CONTEXT_HEADERS if isinstance(value.get(name), str)}


def answered(
    platform: str, status: int, outcome: str, *, event: str | None, job_id: str | None
) -> dict[str, AttributeValue]:
    """What the ingress span says of its answer: ids and names only, never the payload."""
    attributes: dict[str, AttributeValue] = {
        "http.response.status_code": status,
        "gateway.platform": platform,
        "gateway.outcome": outcome,
    }
    if event:
        attributes["gateway.event"] = event
    if job_id:
        attributes["gateway.job_id"] = job_id
    return attributes


def error_type(error: BaseException) -> str:
    """``error.type`` for an exception: its fully qualified class name (``builtins`` left out)."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
