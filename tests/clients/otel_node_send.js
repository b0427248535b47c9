// Sends known spans with the official OpenTelemetry JS SDK and its OTLP/HTTP JSON exporter,
// then prints what the SDK exported, in the form Orrery must store it (one JSON line per span).
//
// usage: node otel_node_send.js http://127.0.0.1:4318
// Exit status 0 only if the exporter reported success.
'use strict';
const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const {
  BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter,
} = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');

const endpoint = process.argv[2];
const memory = new InMemorySpanExporter();
const resource = resourceFromAttributes({
  'service.name': 'node-frontend', 'service.version': '2.0.1', 'k8s.pod.replicas': 3,
});
const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(memory)] });
const tracer = provider.getTracer('orrery.tests.node', '0.9.0');

// Explicit times (HrTime) make the expected timestamps exact.
const t0 = [Math.floor(Date.now() / 1000) - 60, 123456789];
const at = (ms, extraNs = 0) => [t0[0] + Math.floor(ms / 1000), t0[1] + (ms % 1000) * 1e6 + extraNs];

const root = tracer.startSpan('GET /home', {
  kind: api.SpanKind.SERVER, startTime: at(0),
  attributes: { 'http.route': '/home', 'http.status_code': 200, 'cache.hit': false, 'ratio': 0.25, 'ids': [1, 2, 3] },
});
root.addEvent('rendered', { 'template': 'home.html', 'bytes': 5120 }, at(5, 7));
const ctx = api.trace.setSpan(api.context.active(), root);
const child = tracer.startSpan('POST /api/cart', {
  kind: api.SpanKind.CLIENT, startTime: at(1, 11),
  attributes: { 'peer.service': 'cart' },
  links: [{ context: root.spanContext(), attributes: { 'link.reason': 'retry-of' } }],
}, ctx);
child.setStatus({ code: api.SpanStatusCode.ERROR, message: 'upstream 503' });
child.end(at(4, 13));
const internal = tracer.startSpan('render', { kind: api.SpanKind.INTERNAL, startTime: at(4, 500) }, ctx);
internal.setStatus({ code: api.SpanStatusCode.OK });
internal.end(at(5, 1));
root.end(at(6));

const kinds = ['Internal', 'Server', 'Client', 'Producer', 'Consumer'];
const statuses = ['Unset', 'Ok', 'Error'];
const ns = (t) => (BigInt(t[0]) * 1000000000n + BigInt(t[1])).toString();
const stored = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
const attrs = (a) => Object.fromEntries(Object.entries(a || {}).map(([k, v]) => [k, stored(v)]));

const spans = memory.getFinishedSpans();
const exporter = new OTLPTraceExporter({ url: endpoint + '/v1/traces', compression: 'gzip' });
exporter.export(spans, (result) => {
  if (result.code !== 0) {
    console.error('export failed', result.error);
    process.exit(1);
  }
  for (const s of spans) {
    const sc = s.spanContext();
    const parent = s.parentSpanContext;
    console.log(JSON.stringify({
      trace_id: sc.traceId,
      span_id: sc.spanId,
      parent_span_id: parent ? parent.spanId : '',
      trace_state: sc.traceState ? sc.traceState.serialize() : '',
      name: s.name,
      kind: kinds[s.kind],
      service: 'node-frontend',
      resource: attrs(s.resource.attributes),
      scope_name: s.instrumentationScope.name,
      scope_version: s.instrumentationScope.version || '',
      attributes: attrs(s.attributes),
      timestamp: ns(s.startTime),
      duration: ns(s.duration),
      status_code: statuses[s.status.code],
      status_message: s.status.message || '',
      events: s.events.map((e) => [ns(e.time), e.name, attrs(e.attributes)]),
      links: s.links.map((l) => [l.context.traceId, l.context.spanId,
        l.context.traceState ? l.context.traceState.serialize() : '', attrs(l.attributes)]),
    }));
  }
  exporter.shutdown().then(() => process.exit(0));
});
