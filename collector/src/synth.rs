//! Realistic synthetic OTLP requests for tests and the benchmark: 5 services, ~10 attributes a
//! span, 20% of spans with an event, parent/child chains. Ids are unique per `(seed, index)`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub const SERVICES: [&str; 5] = ["frontend", "cart", "checkout", "payment", "inventory"];
const ROUTES: [&str; 6] = ["/", "/cart", "/checkout", "/pay", "/stock/{id}", "/healthz"];

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// The span id of span `index` of request `seed` (8 bytes, never zero).
pub fn span_id(seed: u64, index: u64) -> [u8; 8] {
    ((seed << 24) | (index + 1)).to_be_bytes()
}

/// One request of `spans` spans (traces of 10 spans each), spread over the 5 services, with
/// timestamps around `now_ns`.
pub fn request(seed: u64, spans: usize, now_ns: u64) -> ExportTraceServiceRequest {
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for i in 0..spans as u64 {
        let trace = i / 10;
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&seed.wrapping_add(1).to_be_bytes());
        trace_id[8..].copy_from_slice(&(trace + 1).to_be_bytes());
        let in_trace = i % 10;
        let parent = if in_trace == 0 {
            Vec::new()
        } else {
            span_id(seed, i - 1).to_vec()
        };
        let service = (i % 5) as usize;
        let start = now_ns + i * 1_000;
        let dur = 50_000 + (i * 7919 % 5_000_000);
        let route = ROUTES[(i % 6) as usize];
        let error = i % 23 == 0;
        let span = Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id(seed, i).to_vec(),
            parent_span_id: parent,
            name: format!("{} {route}", if i % 2 == 0 { "GET" } else { "POST" }),
            kind: if in_trace % 2 == 0 { 2 } else { 3 },
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: vec![
                kv(
                    "http.request.method",
                    s(if i % 2 == 0 { "GET" } else { "POST" }),
                ),
                kv("http.route", s(route)),
                kv(
                    "http.response.status_code",
                    Value::IntValue(if error { 500 } else { 200 }),
                ),
                kv("url.scheme", s("https")),
                kv("server.address", s(SERVICES[service])),
                kv("server.port", Value::IntValue(8080)),
                kv("network.protocol.version", s("1.1")),
                kv(
                    "user_agent.original",
                    s("Mozilla/5.0 (X11; Linux x86_64) orrery-bench"),
                ),
                kv("app.request_id", s(&format!("req-{seed}-{i}"))),
                kv("app.cache_hit", Value::BoolValue(i % 3 == 0)),
            ],
            events: if i % 5 == 0 {
                vec![Event {
                    time_unix_nano: start + dur / 2,
                    name: "cache.lookup".into(),
                    attributes: vec![kv("cache.key", s(&format!("k{}", i % 1000)))],
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            status: Some(Status {
                code: if error { 2 } else { 0 },
                message: if error {
                    "internal error".into()
                } else {
                    String::new()
                },
            }),
            ..Default::default()
        };
        per_service[service].push(span);
    }
    ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(SERVICES[i])),
                        kv("service.version", s("1.4.2")),
                        kv("deployment.environment", s("bench")),
                        kv("host.name", s(&format!("node-{}", i % 3))),
                        kv("telemetry.sdk.language", s("rust")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "orrery.synth".into(),
                        version: "0.1.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// Replaces every id by a random-looking one through a bijection (so ids stay unique and
/// parent links stay intact): realistic entropy for on-disk size measurements.
pub fn scramble_ids(req: &mut ExportTraceServiceRequest) {
    fn mix(b: &mut [u8]) {
        for chunk in b.chunks_exact_mut(8) {
            let mut x = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            x ^= x >> 30;
            x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x ^= x >> 27;
            x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^= x >> 31;
            chunk.copy_from_slice(&x.to_be_bytes());
        }
    }
    for span in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        mix(&mut span.trace_id);
        mix(&mut span.span_id);
        mix(&mut span.parent_span_id);
    }
}
