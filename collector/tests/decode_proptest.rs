//! Property tests (the fuzz target) for decoding → validation → rows: arbitrary bytes and
//! arbitrary span shapes never panic, every span is either a row or counted as rejected, and
//! rows always carry well-formed ids.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use orrery_collector::convert::{self, Limits};
use proptest::prelude::*;
use prost::Message;

fn limits() -> Limits {
    Limits {
        max_attribute_len: 32,
        max_spans_per_request: 1000,
    }
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
    for span in req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        for kv in &span.attributes {
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(v)) => assert!(v.len() <= 32),
                Some(Value::BytesValue(v)) => assert!(v.len() <= 32),
                _ => {}
            }
        }
    }
    let mut rows = Vec::new();
    convert::to_rows(req, &mut rows);
    assert_eq!(rows.len(), s.accepted);
    for r in rows {
        assert_eq!(r.trace_id.len(), 32);
        assert_eq!(r.span_id.len(), 16);
        assert!(r.parent_span_id.is_empty() || r.parent_span_id.len() == 16);
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,80}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::BytesValue),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (
        proptest::collection::vec(any::<u8>(), 0..18),
        proptest::collection::vec(any::<u8>(), 0..10),
        proptest::collection::vec(any::<u8>(), 0..10),
        any::<u64>(),
        any::<u64>(),
        any::<i32>(),
        proptest::collection::vec((".{0,10}", value()), 0..6),
    )
        .prop_map(|(t, s, p, a, b, kind, attrs)| Span {
            trace_id: t,
            span_id: s,
            parent_span_id: p,
            start_time_unix_nano: a,
            end_time_unix_nano: b,
            kind,
            attributes: attrs
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k,
                    value: Some(AnyValue { value: Some(v) }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(req) = ExportTraceServiceRequest::decode(&data[..]) {
            check(req);
        }
        if let Ok(req) = serde_json::from_slice::<ExportTraceServiceRequest>(&data) {
            check(req);
        }
    }

    #[test]
    fn arbitrary_spans_become_rows_or_rejections(spans in proptest::collection::vec(span(), 0..40)) {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        };
        // Through the wire format and back, as a receiver sees it.
        let decoded = ExportTraceServiceRequest::decode(&req.encode_to_vec()[..]).unwrap();
        check(decoded);
    }
}
