//! Property tests (the fuzz target) for decoding → validation → rows: arbitrary bytes and
//! arbitrary span shapes never panic, every span is either a row or counted as rejected, and
//! rows always carry well-formed ids.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use orrery_collector::convert::{self, Limits};
use orrery_collector::rowbinary;
use orrery_collector::transcode::{self, Fallback};
use orrery_store::SpanRow;
use proptest::prelude::*;
use prost::Message;

fn limits() -> Limits {
    Limits {
        max_attribute_len: 32,
        max_spans_per_request: 1000,
        ..Limits::default()
    }
}

/// Start and end times: mostly inside the accepted window (so most spans become rows), the
/// rest anywhere (too old, in the future, ending before they start).
fn times() -> impl Strategy<Value = (u64, u64)> {
    (0u8..8, any::<u64>(), any::<u64>(), 0u64..10_000_000_000).prop_map(
        |(sel, raw_a, raw_b, dur)| {
            let now = convert::now_ns();
            let day = 86_400_000_000_000u64;
            match sel {
                0 => (raw_a, raw_b),
                1 => (raw_a, raw_a.saturating_add(dur)),
                2 => {
                    let start = now - 3 * day + raw_a % (3 * day);
                    (start, raw_b)
                }
                _ => {
                    let start = now - 6 * day + raw_a % (6 * day);
                    (start, start + dur)
                }
            }
        },
    )
}

fn check(mut req: ExportTraceServiceRequest) {
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let Ok(s) = convert::sanitize(&mut req, &limits()) else {
        assert!(total > 1000);
        return;
    };
    assert_eq!(s.accepted + s.rejected, total);
    assert_eq!(s.rejected > 0, !s.message.is_empty());
    // Stored string attributes are cut to the limit; bytes are cut before base64 (≤ 44 chars).
    let kinds: Vec<Vec<Option<bool>>> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|span| {
            span.attributes
                .iter()
                .map(
                    |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(_)) => Some(true),
                        Some(Value::BytesValue(_)) => Some(false),
                        _ => None,
                    },
                )
                .collect()
        })
        .collect();
    let (record, spans) = rowbinary::record(&req, 32);
    assert_eq!(spans, s.accepted);
    let mut rows = Vec::new();
    convert::to_rows(req, 32, &mut rows);
    assert_eq!(rows.len(), s.accepted);
    for (row, kinds) in rows.iter().zip(&kinds) {
        for ((_, v), kind) in row.span_attributes.iter().zip(kinds) {
            match kind {
                Some(true) => assert!(v.len() <= 32, "{v:?}"),
                Some(false) => assert!(v.len() <= 44, "{v:?}"),
                None => {}
            }
        }
    }
    // The collector's direct encoding is byte for byte the rows of the readable reference.
    let mut expected = (spans as u32).to_le_bytes().to_vec();
    rows.iter()
        .for_each(|r| reference_row_binary(r, &mut expected));
    assert_eq!(record, expected);
    for r in rows {
        assert_eq!(r.trace_id.len(), 32);
        assert_eq!(r.span_id.len(), 16);
        assert!(r.parent_span_id.is_empty() || r.parent_span_id.len() == 16);
    }
}

/// The receiver's fast path (protobuf straight to rows) agrees with decode → sanitize →
/// encode: the same record bytes and the same accepted/rejected outcome and message; it never
/// accepts what prost refuses. Returns whether the fast path handled the request.
fn check_transcode(bytes: &[u8]) -> bool {
    let fast = transcode::transcode(bytes, &limits());
    let slow = ExportTraceServiceRequest::decode(bytes);
    match (fast, slow) {
        (Err(Fallback), _) => return false,
        (Ok(_), Err(e)) => panic!("the fast path accepted what prost refuses: {e}"),
        (Ok(Err(fast)), Ok(mut req)) => {
            let slow = convert::sanitize(&mut req, &limits()).expect_err("too many spans");
            assert_eq!((fast.spans, fast.max), (slow.spans, slow.max));
        }
        (Ok(Ok(fast)), Ok(mut req)) => {
            let slow = convert::sanitize(&mut req, &limits()).expect("within limits");
            let f = &fast.sanitized;
            assert_eq!(
                (f.accepted, f.rejected, &f.message),
                (slow.accepted, slow.rejected, &slow.message)
            );
            assert_eq!(fast.record, rowbinary::record(&req, 32).0);
        }
    }
    true
}

/// RowBinary of a `SpanRow` in `row::COLUMNS`' order, written from the
/// format's definition (LEB128 lengths, little-endian numbers; maps and arrays as a count and
/// their items).
fn reference_row_binary(r: &SpanRow, out: &mut Vec<u8>) {
    fn len(out: &mut Vec<u8>, n: usize) {
        let mut n = n as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n > 0 { byte | 0x80 } else { byte });
            if n == 0 {
                break;
            }
        }
    }
    fn s(out: &mut Vec<u8>, v: &str) {
        len(out, v.len());
        out.extend_from_slice(v.as_bytes());
    }
    fn map(out: &mut Vec<u8>, m: &[(String, String)]) {
        len(out, m.len());
        for (k, v) in m {
            s(out, k);
            s(out, v);
        }
    }
    out.extend_from_slice(&r.timestamp.to_le_bytes());
    for v in [
        &r.trace_id,
        &r.span_id,
        &r.parent_span_id,
        &r.trace_state,
        &r.span_name,
        &r.span_kind,
        &r.service_name,
    ] {
        s(out, v);
    }
    map(out, &r.resource_attributes);
    s(out, &r.scope_name);
    s(out, &r.scope_version);
    map(out, &r.span_attributes);
    out.extend_from_slice(&r.duration.to_le_bytes());
    s(out, &r.status_code);
    s(out, &r.status_message);
    len(out, r.events_timestamp.len());
    r.events_timestamp
        .iter()
        .for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
    len(out, r.events_name.len());
    r.events_name.iter().for_each(|v| s(out, v));
    len(out, r.events_attributes.len());
    r.events_attributes.iter().for_each(|m| map(out, m));
    for list in [&r.links_trace_id, &r.links_span_id, &r.links_trace_state] {
        len(out, list.len());
        list.iter().for_each(|v| s(out, v));
    }
    len(out, r.links_attributes.len());
    r.links_attributes.iter().for_each(|m| map(out, m));
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,80}".prop_map(Value::StringValue),
        // Past 127 bytes a RowBinary length takes two bytes.
        ".{100,200}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::BytesValue),
    ]
}

fn value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => scalar(),
        1 => proptest::collection::vec(scalar(), 0..4).prop_map(|v| Value::ArrayValue(ArrayValue {
            values: v.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
        })),
        1 => attrs(3).prop_map(|values| Value::KvlistValue(KeyValueList { values })),
    ]
    .boxed()
}

fn attrs(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec((".{0,10}", scalar()), 0..max).prop_map(|attrs| {
        attrs
            .into_iter()
            .map(|(k, v)| KeyValue {
                key: k,
                value: Some(AnyValue { value: Some(v) }),
                ..Default::default()
            })
            .collect()
    })
}

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), ".{0,20}", attrs(3)).prop_map(|(t, name, attributes)| Event {
        time_unix_nano: t,
        name,
        attributes,
        ..Default::default()
    })
}

fn link() -> impl Strategy<Value = Link> {
    (
        proptest::collection::vec(any::<u8>(), 16..17),
        proptest::collection::vec(any::<u8>(), 7..9),
        ".{0,20}",
        attrs(3),
    )
        .prop_map(|(trace_id, span_id, trace_state, attributes)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            ..Default::default()
        })
}

fn span() -> impl Strategy<Value = Span> {
    span_with(value())
}

/// Spans whose attribute values are all scalars: the shape the fast path handles.
fn scalar_span() -> impl Strategy<Value = Span> {
    span_with(scalar().boxed())
}

fn span_with(value: BoxedStrategy<Value>) -> impl Strategy<Value = Span> {
    (
        proptest::collection::vec(any::<u8>(), 0..18),
        proptest::collection::vec(any::<u8>(), 0..10),
        proptest::collection::vec(any::<u8>(), 0..10),
        times(),
        any::<i32>(),
        proptest::collection::vec((".{0,10}", value), 0..6),
        (
            proptest::collection::vec(event(), 0..3),
            proptest::collection::vec(link(), 0..2),
            any::<i32>(),
            ".{0,30}",
            ".{0,30}",
        ),
    )
        .prop_map(
            |(t, s, p, (a, b), kind, attrs, (events, links, code, message, name))| Span {
                trace_id: t,
                span_id: s,
                parent_span_id: p,
                start_time_unix_nano: a,
                end_time_unix_nano: b,
                kind,
                name,
                events,
                links,
                status: (code != 0).then_some(Status {
                    code: code % 4,
                    message,
                }),
                attributes: attrs
                    .into_iter()
                    .map(|(k, v)| KeyValue {
                        key: k,
                        value: Some(AnyValue { value: Some(v) }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(req) = ExportTraceServiceRequest::decode(&data[..]) {
            check(req);
        }
        check_transcode(&data);
        if let Ok(req) = serde_json::from_slice::<ExportTraceServiceRequest>(&data) {
            check(req);
        }
    }

    #[test]
    fn arbitrary_spans_become_rows_or_rejections(
        spans in proptest::collection::vec(span(), 0..40),
        resource in proptest::option::of(attrs(4)),
        service in proptest::option::of(value()),
        scope in proptest::option::of((".{0,20}", ".{0,10}")),
    ) {
        let req = request(spans, resource, service, scope);
        // Through the wire format and back, as a receiver sees it.
        let bytes = req.encode_to_vec();
        check(ExportTraceServiceRequest::decode(&bytes[..]).unwrap());
        check_transcode(&bytes);
    }

    #[test]
    fn the_fast_path_takes_scalar_requests_and_agrees_with_the_general_one(
        spans in proptest::collection::vec(scalar_span(), 0..40),
        resource in proptest::option::of(attrs(4)),
        service in proptest::option::of(scalar()),
        scope in proptest::option::of((".{0,20}", ".{0,10}")),
    ) {
        let bytes = request(spans, resource, service, scope).encode_to_vec();
        prop_assert!(check_transcode(&bytes), "fell back on a request it should handle");
        // Cut anywhere, the bytes are refused or (rarely) still a valid request: never a
        // disagreement.
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            check_transcode(&bytes[..cut]);
        }
    }
}

fn request(
    spans: Vec<Span>,
    resource: Option<Vec<KeyValue>>,
    service: Option<Value>,
    scope: Option<(String, String)>,
) -> ExportTraceServiceRequest {
    {
        let resource = resource.map(|mut attributes| {
            if let Some(v) = service {
                attributes.push(KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(v) }),
                    ..Default::default()
                });
            }
            Resource {
                attributes,
                ..Default::default()
            }
        });
        let scope = scope.map(|(name, version)| InstrumentationScope {
            name,
            version,
            ..Default::default()
        });
        let (first, second) = spans.split_at(spans.len() / 2);
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource,
                    scope_spans: vec![ScopeSpans {
                        scope,
                        spans: first.to_vec(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: second.to_vec(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        }
    }
}
