// Sends a small shop's traces with the official OpenTelemetry JS SDK (one tracer provider per
// service, W3C context passed from caller to callee as real services do), over OTLP/HTTP JSON.
// Used by tests/jaeger_ui.rs, which drives the real Jaeger UI against what arrives.
//
// usage: node otel_node_shop.js http://127.0.0.1:4318
// Prints one JSON line: {"traces": {"<trace id>": {"spans": N, "services": [...]}, ...},
//                        "edges": [["frontend", "checkout"], ...]}
// Exit status 0 only if every exporter reported success.
'use strict';
const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');

const endpoint = process.argv[2];
const providers = {};
function tracer(service) {
  if (!providers[service]) {
    const exporter = new OTLPTraceExporter({ url: endpoint + '/v1/traces' });
    providers[service] = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': service, 'host.name': `${service}-1` }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
  }
  return providers[service].getTracer('orrery.tests.jaeger-ui', '1.0.0');
}

const t0 = Date.now() - 60000;
const traces = {};
const edges = new Set();
// A span of `service`, child of `parent` (a span or null); `calls` are nested callees.
function call(service, name, kind, startMs, durMs, parent, opts = {}) {
  const ctx = parent ? api.trace.setSpan(api.context.active(), parent.span) : api.context.active();
  const span = tracer(service).startSpan(name, { kind, startTime: t0 + startMs }, ctx);
  if (opts.error) span.setStatus({ code: api.SpanStatusCode.ERROR, message: opts.error });
  const id = span.spanContext().traceId;
  const t = (traces[id] ??= { spans: 0, services: new Set() });
  t.spans += 1;
  t.services.add(service);
  if (parent && parent.service !== service) edges.add(`${parent.service}>${service}`);
  return { span, service, end: () => span.end(t0 + startMs + durMs) };
}

// Trace 1: frontend -> checkout -> payments (error), checkout -> inventory.
{
  const root = call('frontend', 'GET /checkout', api.SpanKind.SERVER, 0, 120, null);
  const c1 = call('frontend', 'POST checkout', api.SpanKind.CLIENT, 5, 100, root);
  const s1 = call('checkout', 'POST /checkout', api.SpanKind.SERVER, 8, 95, c1);
  const c2 = call('checkout', 'charge', api.SpanKind.CLIENT, 10, 40, s1);
  const s2 = call('payments', 'POST /charge', api.SpanKind.SERVER, 12, 35, c2, { error: 'card declined' });
  const c3 = call('checkout', 'reserve', api.SpanKind.CLIENT, 55, 30, s1);
  const s3 = call('inventory', 'POST /reserve', api.SpanKind.SERVER, 57, 25, c3);
  for (const s of [s3, c3, s2, c2, s1, c1, root]) s.end();
}
// Trace 2: frontend -> inventory.
{
  const root = call('frontend', 'GET /products', api.SpanKind.SERVER, 1000, 40, null);
  const c = call('frontend', 'GET inventory', api.SpanKind.CLIENT, 1002, 30, root);
  const s = call('inventory', 'GET /stock', api.SpanKind.SERVER, 1004, 25, c);
  for (const x of [s, c, root]) x.end();
}
// Trace 3: frontend -> checkout.
{
  const root = call('frontend', 'GET /cart', api.SpanKind.SERVER, 2000, 60, null);
  const c = call('frontend', 'GET cart', api.SpanKind.CLIENT, 2002, 50, root);
  const s = call('checkout', 'GET /cart', api.SpanKind.SERVER, 2004, 45, c);
  for (const x of [s, c, root]) x.end();
}

Promise.all(Object.values(providers).map((p) => p.forceFlush().then(() => p.shutdown())))
  .then(() => {
    const out = {};
    for (const [id, t] of Object.entries(traces)) out[id] = { spans: t.spans, services: [...t.services].sort() };
    console.log(JSON.stringify({ traces: out, edges: [...edges].sort().map((e) => e.split('>')) }));
    process.exit(0);
  })
  .catch((e) => {
    console.error('export failed', e);
    process.exit(1);
  });
