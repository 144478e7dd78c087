"""The OpenTelemetry side of ``gateway.tracing``: the SDK's provider, an OTLP/HTTP exporter, spans.

Imported only when ``GATEWAY_TRACING=otlp`` (``gateway.tracing.start``); it needs the ``otel``
extra. The SDK reads its own settings: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*`` and the rest. Spans are
batched and exported from the SDK's own thread, never on the request path.

Exceptions are recorded as ``error.type`` (the class) and an error status, never with their
message or stack: messages can quote what a model server or a platform answered, and that may
be customer data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import __version__
from gateway.tracing import AttributeValue, Kind, error_type

__all__ = ["Recorded", "Tracer"]

_KINDS = {
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "consumer": SpanKind.CONSUMER,
    "internal": SpanKind.INTERNAL,
}
# W3C Trace Context only: OTEL_PROPAGATORS' default adds baggage, which could carry anything.
_PROPAGATOR = TraceContextTextMapPropagator()


class Recorded:
    """A recording span, as ``gateway.tracing.Span``."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Add ``attributes``."""
        self._span.set_attributes(attributes)

    def fail(self, error_type: str) -> None:
        """Set ``error.type`` and the error status (no description: it could hold customer data)."""
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR))


class Tracer:
    """The process's tracer: its provider exports in batches over OTLP/HTTP."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("gateway", __version__)

    @classmethod
    def start(cls, service: str) -> Tracer:
        """Build the provider (``service`` unless the environment names the service), and make it
        the process's global one, so spans of a custom agent or an installed instrumentation
        join the run's trace."""
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: service}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return cls(provider)

    @contextmanager
    def span(
        self,
        name: str,
        *,
        kind: Kind,
        parent: Mapping[str, str] | None,
        attributes: Mapping[str, AttributeValue],
    ) -> Iterator[Recorded]:
        """``gateway.tracing.span`` while tracing is on."""
        context = None if parent is None else _PROPAGATOR.extract(parent)
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=_KINDS[kind],
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            recorded = Recorded(current)
            try:
                yield recorded
            except Exception as error:
                recorded.fail(error_type(error))
                raise

    def carrier(self) -> dict[str, str]:
        """The current span's context as ``traceparent`` (and ``tracestate`` when it has one)."""
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers)
        return headers

    def flush(self, timeout: float) -> None:
        """Export what is buffered, waiting at most ``timeout`` seconds."""
        self._provider.force_flush(int(timeout * 1000))
