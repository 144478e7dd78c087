"""The fake OTLP collector, driven by OpenTelemetry's own OTLP/HTTP exporter and by raw requests."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tests.fakes.otlp import PROTOBUF, OtlpCollector


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as fake:
        yield fake


def _emit(collector: OtlpCollector, *, compression: Compression = Compression.NoCompression) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{collector.endpoint}/v1/traces", compression=compression)
    provider = TracerProvider(resource=Resource({"service.name": "fake-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes={"n": 3, "ok": True}):
        with tracer.start_as_current_span("child", attributes={"tags": ["a", "b"]}):
            pass
    provider.shutdown()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_spans_from_the_real_exporter_are_decoded(collector: OtlpCollector, compression: Compression) -> None:
    _emit(collector, compression=compression)
    child, parent = collector.spans()  # a span is exported when it ends: the child first
    assert (parent.name, parent.kind, parent.parent_id) == ("parent", "server", "")
    assert parent.service == "fake-test" and parent.scope == "tests"
    assert parent.attributes == {"n": 3, "ok": True}
    assert child.parent_id == parent.span_id and child.trace_id == parent.trace_id
    assert child.attributes == {"tags": ["a", "b"]} and child.kind == "internal"
    call = collector.calls("POST", "/v1/traces")[0]
    assert call.status == 200


def test_success_is_an_empty_export_response_in_protobuf(collector: OtlpCollector) -> None:
    answer = httpx.post(
        f"{collector.endpoint}/v1/traces",
        content=ExportTraceServiceRequest().SerializeToString(),
        headers={"content-type": PROTOBUF},
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == PROTOBUF
    assert not ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success")


@pytest.mark.parametrize(
    ("path", "content_type", "body", "status"),
    [
        ("/v1/traces", "application/json", b'{"resourceSpans": []}', 415),
        ("/v1/traces", PROTOBUF, b"\xff\xff\xff not protobuf", 400),
        ("/v1/metrics", PROTOBUF, b"", 404),
    ],
)
def test_what_an_otlp_server_refuses_is_refused_with_a_status(
    collector: OtlpCollector, path: str, content_type: str, body: bytes, status: int
) -> None:
    answer = httpx.post(f"{collector.endpoint}{path}", content=body, headers={"content-type": content_type})
    assert answer.status_code == status
    assert Status.FromString(answer.content).message  # a google.rpc.Status says why
    assert collector.spans() == []


def test_a_span_with_an_all_zero_trace_id_is_refused(collector: OtlpCollector) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes(16), bytes.fromhex("0102030405060708"), "zero"
    answer = httpx.post(
        f"{collector.endpoint}/v1/traces",
        content=gzip.compress(request.SerializeToString()),
        headers={"content-type": PROTOBUF, "content-encoding": "gzip"},
    )
    assert answer.status_code == 400 and "trace id" in Status.FromString(answer.content).message
    assert collector.spans() == []


def test_wait_for_spans_names_what_arrived_when_it_times_out(collector: OtlpCollector) -> None:
    _emit(collector)
    with pytest.raises(TimeoutError, match="parent"):
        collector.wait_for_spans(lambda span: span.name == "missing", timeout=0.2)
