"""Sends known spans with the official OpenTelemetry Python SDK and OTLP exporter, then prints
what the SDK exported, in the form Orrery must store it (one JSON object per span).

usage: otel_python_send.py grpc|http ENDPOINT [N_EXTRA_SPANS]
  grpc: ENDPOINT like 127.0.0.1:4317 (gzip); http: ENDPOINT like http://127.0.0.1:4318 (protobuf, gzip)
Exit status 0 only if the exporter reported success.
"""
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState

proto, endpoint = sys.argv[1], sys.argv[2]
extra = int(sys.argv[3]) if len(sys.argv) > 3 else 0

if proto == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=Compression.Gzip)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", compression=Compression.Gzip)

memory = InMemorySpanExporter()
resource = Resource.create(
    {"service.name": f"py-{proto}-checkout", "deployment.environment": "test", "host.cpus": 2}
)
provider = TracerProvider(resource=resource)
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("orrery.tests.python", "1.2.3")

with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
    root.set_attribute("http.method", "GET")
    root.set_attribute("http.status_code", 200)
    root.set_attribute("retry", True)
    root.set_attribute("ratio", 0.25)
    root.set_attribute("tags", ["a", "b"])
    root.add_event("cache miss", {"key": "cart:42", "size": 3})
    with tracer.start_as_current_span("SELECT carts", kind=SpanKind.CLIENT) as db:
        db.set_attribute("db.system", "postgresql")
        db.set_status(Status(StatusCode.ERROR, "connection reset"))
        db.add_event("exception", {"exception.type": "IOError"})
    other = root.get_span_context()
    with tracer.start_as_current_span(
        "publish order",
        kind=SpanKind.PRODUCER,
        links=[Link(other, {"link.kind": "follows"})],
    ) as p:
        p.set_status(Status(StatusCode.OK))
    ts_parent = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                root.get_span_context().trace_id,
                0x1122334455667788,
                is_remote=True,
                trace_flags=trace.TraceFlags(1),
                trace_state=TraceState([("vendor", "v1")]),
            )
        )
    )
    with tracer.start_as_current_span("consume", context=ts_parent, kind=SpanKind.CONSUMER):
        pass
for i in range(extra):
    with tracer.start_as_current_span(f"extra {i % 7}", kind=SpanKind.INTERNAL) as s:
        s.set_attribute("i", i)

spans = memory.get_finished_spans()
# Send in two requests so more than one export reaches the collector.
half = len(spans) // 2
for chunk in (spans[:half], spans[half:]):
    result = exporter.export(chunk)
    if result != SpanExportResult.SUCCESS:
        print(f"export failed: {result}", file=sys.stderr)
        sys.exit(1)
exporter.shutdown()


def stored(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(list(v), separators=(",", ":"))


def attrs(a):
    return {k: stored(v) for k, v in (a or {}).items()}


for s in spans:
    print(json.dumps({
        "trace_id": format(s.context.trace_id, "032x"),
        "span_id": format(s.context.span_id, "016x"),
        "parent_span_id": format(s.parent.span_id, "016x") if s.parent else "",
        "trace_state": s.context.trace_state.to_header(),
        "name": s.name,
        "kind": s.kind.name.capitalize(),
        "service": resource.attributes["service.name"],
        "resource": attrs(s.resource.attributes),
        "scope_name": s.instrumentation_scope.name,
        "scope_version": s.instrumentation_scope.version or "",
        "attributes": attrs(s.attributes),
        "timestamp": s.start_time,
        "duration": s.end_time - s.start_time,
        "status_code": s.status.status_code.name.capitalize(),
        "status_message": s.status.description or "",
        "events": [[e.timestamp, e.name, attrs(e.attributes)] for e in s.events],
        "links": [
            [format(l.context.trace_id, "032x"), format(l.context.span_id, "016x"),
             l.context.trace_state.to_header(), attrs(l.attributes)]
            for l in s.links
        ],
    }))
