//! The Jaeger APIs' JSON pinned byte for byte (a v1 trace, a v3 trace, v3 trace summaries, the
//! services lists), so the typed bodies cannot drift from what the Jaeger UI and Grafana were
//! tested against.

use orrery_store::SpanRow;

use super::{otlp, v1, v1_model, v3};

/// Two spans of one trace with every translated field set: resource, scope, trace state,
/// status, events (named, unnamed, with an explicit `event`), links (child_of and not).
fn rows() -> Vec<SpanRow> {
    let trace = format!("{}{}", "0".repeat(16), "a".repeat(16));
    let root = SpanRow {
        timestamp: 1_700_000_000_123_456_789,
        trace_id: trace.clone(),
        span_id: "0000000000000001".into(),
        trace_state: "vendor=x".into(),
        span_name: "GET /a".into(),
        span_kind: "Server".into(),
        service_name: "api".into(),
        resource_attributes: vec![
            ("service.name".into(), "api".into()),
            ("host.name".into(), "h1".into()),
        ],
        scope_name: "lib".into(),
        scope_version: "1.2".into(),
        span_attributes: vec![("http.route".into(), "/a".into())],
        duration: 5_000_000,
        status_code: "Error".into(),
        status_message: "boom".into(),
        events_timestamp: vec![1_700_000_000_124_000_000, 1_700_000_000_125_000_000, 0],
        events_name: vec!["".into(), "retry".into(), "named".into()],
        events_attributes: vec![
            vec![("k".into(), "v".into())],
            vec![("event".into(), "explicit".into())],
            vec![],
        ],
        links_trace_id: vec!["b".repeat(32), "c".repeat(32)],
        links_span_id: vec!["1".repeat(16), "2".repeat(16)],
        links_trace_state: vec![String::new(), String::new()],
        links_attributes: vec![
            vec![("opentracing.ref_type".into(), "child_of".into())],
            vec![("x".into(), "y".into())],
        ],
        ..Default::default()
    };
    let child = SpanRow {
        timestamp: 1_700_000_000_124_000_000,
        trace_id: trace,
        span_id: "0000000000000002".into(),
        parent_span_id: "0000000000000001".into(),
        span_name: "SELECT".into(),
        span_kind: "Client".into(),
        service_name: "db".into(),
        resource_attributes: vec![("service.name".into(), "db".into())],
        duration: 1_000_000,
        status_code: "Ok".into(),
        ..Default::default()
    };
    vec![root, child]
}

async fn body(r: axum::response::Response) -> String {
    let b = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn a_v1_trace_is_exactly_jaegers_json() {
    let rows = rows();
    let got =
        serde_json::to_string(&v1_model::trace_json(&rows[0].trace_id.clone(), rows)).unwrap();
    assert_eq!(got, V1_TRACE);
}

#[test]
fn a_v3_trace_is_exactly_otlp_json() {
    let got = serde_json::to_string(&otlp::traces_data(&rows())).unwrap();
    assert_eq!(got, V3_TRACE);
}

#[test]
fn trace_summaries_are_exactly_jaegers_json() {
    use super::summary::{ServiceSummary, TraceSummary};
    let summaries = vec![
        TraceSummary {
            trace_id: "0000000000000000aaaaaaaaaaaaaaaa".into(),
            root_service: "api".into(),
            root_operation: "GET /a".into(),
            start_ns: 1_700_000_000_123_456_789,
            end_ns: 1_700_000_000_128_456_789,
            span_count: 3,
            error_span_count: 1,
            orphan_span_count: 1,
            services: vec![
                ServiceSummary {
                    name: "api".into(),
                    span_count: 2,
                    error_span_count: 1,
                },
                ServiceSummary {
                    name: "db".into(),
                    span_count: 1,
                    error_span_count: 0,
                },
            ],
        },
        // No root stored, a clock before the epoch: empty names, times clamped to 0.
        TraceSummary {
            trace_id: "bb".into(),
            root_service: String::new(),
            root_operation: String::new(),
            start_ns: -5,
            end_ns: -1,
            span_count: 0,
            error_span_count: 0,
            orphan_span_count: 0,
            services: vec![],
        },
    ];
    let got = serde_json::to_string(&v3::summaries_body(&summaries)).unwrap();
    assert_eq!(got, V3_SUMMARIES);
}

#[tokio::test]
async fn the_services_lists_are_exactly_jaegers_json() {
    let services = vec!["api".to_string(), "db".to_string()];
    assert_eq!(body(v1::services_body(services.clone())).await, V1_SERVICES);
    assert_eq!(body(v3::services_body(services)).await, V3_SERVICES);
}

const V1_TRACE: &str = r#"{"processes":{"p1":{"serviceName":"api","tags":[{"key":"host.name","type":"string","value":"h1"}]},"p2":{"serviceName":"db","tags":[]}},"spans":[{"duration":5000,"flags":1,"logs":[{"fields":[{"key":"k","type":"string","value":"v"}],"timestamp":1700000000124000},{"fields":[{"key":"event","type":"string","value":"explicit"}],"timestamp":1700000000125000},{"fields":[{"key":"event","type":"string","value":"named"}],"timestamp":0}],"operationName":"GET /a","processID":"p1","references":[{"refType":"CHILD_OF","spanID":"1111111111111111","traceID":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},{"refType":"FOLLOWS_FROM","spanID":"2222222222222222","traceID":"cccccccccccccccccccccccccccccccc"}],"spanID":"0000000000000001","startTime":1700000000123456,"tags":[{"key":"http.route","type":"string","value":"/a"},{"key":"span.kind","type":"string","value":"server"},{"key":"error","type":"bool","value":true},{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"otel.status_description","type":"string","value":"boom"},{"key":"otel.scope.name","type":"string","value":"lib"},{"key":"otel.scope.version","type":"string","value":"1.2"},{"key":"w3c.tracestate","type":"string","value":"vendor=x"}],"traceID":"aaaaaaaaaaaaaaaa","warnings":null},{"duration":1000,"flags":1,"logs":[],"operationName":"SELECT","processID":"p2","references":[{"refType":"CHILD_OF","spanID":"0000000000000001","traceID":"aaaaaaaaaaaaaaaa"}],"spanID":"0000000000000002","startTime":1700000000124000,"tags":[{"key":"span.kind","type":"string","value":"client"},{"key":"otel.status_code","type":"string","value":"OK"}],"traceID":"aaaaaaaaaaaaaaaa","warnings":null}],"traceID":"aaaaaaaaaaaaaaaa","warnings":null}"#;
const V3_TRACE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h1"}},{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"scope":{"name":"lib","version":"1.2"},"spans":[{"attributes":[{"key":"http.route","value":{"stringValue":"/a"}}],"endTimeUnixNano":"1700000000128456789","events":[{"attributes":[{"key":"k","value":{"stringValue":"v"}}],"name":"","timeUnixNano":"1700000000124000000"},{"attributes":[{"key":"event","value":{"stringValue":"explicit"}}],"name":"retry","timeUnixNano":"1700000000125000000"},{"name":"named","timeUnixNano":"0"}],"kind":2,"links":[{"attributes":[{"key":"opentracing.ref_type","value":{"stringValue":"child_of"}}],"spanId":"1111111111111111","traceId":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},{"attributes":[{"key":"x","value":{"stringValue":"y"}}],"spanId":"2222222222222222","traceId":"cccccccccccccccccccccccccccccccc"}],"name":"GET /a","spanId":"0000000000000001","startTimeUnixNano":"1700000000123456789","status":{"code":2,"message":"boom"},"traceId":"0000000000000000aaaaaaaaaaaaaaaa","traceState":"vendor=x"}]}]},{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"db"}}]},"scopeSpans":[{"scope":{},"spans":[{"endTimeUnixNano":"1700000000125000000","kind":3,"name":"SELECT","parentSpanId":"0000000000000001","spanId":"0000000000000002","startTimeUnixNano":"1700000000124000000","status":{"code":1},"traceId":"0000000000000000aaaaaaaaaaaaaaaa"}]}]}]}"#;
const V3_SUMMARIES: &str = r#"{"summaries":[{"errorSpanCount":1,"maxEndTimeUnixNano":"1700000000128456789","minStartTimeUnixNano":"1700000000123456789","orphanSpanCount":1,"rootOperationName":"GET /a","rootServiceName":"api","services":[{"errorSpanCount":1,"name":"api","spanCount":2},{"errorSpanCount":0,"name":"db","spanCount":1}],"spanCount":3,"traceId":"0000000000000000aaaaaaaaaaaaaaaa"},{"errorSpanCount":0,"maxEndTimeUnixNano":"0","minStartTimeUnixNano":"0","orphanSpanCount":0,"rootOperationName":"","rootServiceName":"","services":[],"spanCount":0,"traceId":"bb"}]}"#;
const V1_SERVICES: &str = r#"{"data":["api","db"],"errors":null,"limit":0,"offset":0,"total":2}"#;
const V3_SERVICES: &str = r#"{"services":["api","db"]}"#;
