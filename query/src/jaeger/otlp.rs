//! Stored spans as OTLP JSON (`TracesData`), the body Jaeger's API v3 HTTP gateway returns
//! inside `{"result": …}`: proto3 JSON with camelCase names, int64 as decimal strings, enums
//! as numbers, hex ids, empty fields left out.
//!
//! Attribute values are strings: the exporter's schema stores every value as its string form,
//! and a stored `"42"` may have been the string "42" or the integer 42, so no type is invented
//! (see docs/query.md, "Attribute types").

use std::collections::BTreeMap;

use orrery_store::SpanRow;
use orrery_store::span::{kind, status};
use serde_json::{Map, Value, json};

/// `[{"key", "value": {"stringValue"}}]`, sorted by key.
pub fn attributes(pairs: &[(String, String)]) -> Vec<Value> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
        .collect()
}

fn put_nonempty(obj: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        obj.insert(key.into(), Value::String(value.into()));
    }
}

/// One span in OTLP JSON.
pub fn span(r: &SpanRow) -> Value {
    let mut s = Map::new();
    s.insert("traceId".into(), json!(r.trace_id));
    s.insert("spanId".into(), json!(r.span_id));
    put_nonempty(&mut s, "traceState", &r.trace_state);
    put_nonempty(&mut s, "parentSpanId", &r.parent_span_id);
    s.insert("name".into(), json!(r.span_name));
    let k = kind::to_otlp(&r.span_kind);
    if k != 0 {
        s.insert("kind".into(), json!(k));
    }
    s.insert("startTimeUnixNano".into(), json!(r.timestamp.to_string()));
    s.insert(
        "endTimeUnixNano".into(),
        json!((r.timestamp + r.duration as i64).to_string()),
    );
    if !r.span_attributes.is_empty() {
        s.insert("attributes".into(), json!(attributes(&r.span_attributes)));
    }
    if !r.events_name.is_empty() {
        let events: Vec<Value> = r
            .events_name
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut e = Map::new();
                let ts = r.events_timestamp.get(i).copied().unwrap_or(0);
                e.insert("timeUnixNano".into(), json!(ts.to_string()));
                e.insert("name".into(), json!(name));
                if let Some(a) = r.events_attributes.get(i).filter(|a| !a.is_empty()) {
                    e.insert("attributes".into(), json!(attributes(a)));
                }
                Value::Object(e)
            })
            .collect();
        s.insert("events".into(), json!(events));
    }
    if !r.links_span_id.is_empty() {
        let links: Vec<Value> = r
            .links_span_id
            .iter()
            .enumerate()
            .map(|(i, sid)| {
                let mut l = Map::new();
                l.insert(
                    "traceId".into(),
                    json!(r.links_trace_id.get(i).cloned().unwrap_or_default()),
                );
                l.insert("spanId".into(), json!(sid));
                put_nonempty(
                    &mut l,
                    "traceState",
                    r.links_trace_state.get(i).map(|s| s.as_str()).unwrap_or(""),
                );
                if let Some(a) = r.links_attributes.get(i).filter(|a| !a.is_empty()) {
                    l.insert("attributes".into(), json!(attributes(a)));
                }
                Value::Object(l)
            })
            .collect();
        s.insert("links".into(), json!(links));
    }
    let mut st = Map::new();
    put_nonempty(&mut st, "message", &r.status_message);
    let code = status::to_otlp(&r.status_code);
    if code != 0 {
        st.insert("code".into(), json!(code));
    }
    s.insert("status".into(), Value::Object(st));
    Value::Object(s)
}

/// Spans grouped as OTLP does: one `resourceSpans` per distinct resource (service name plus
/// resource attributes), one `scopeSpans` per (scope name, version) inside it. Duplicate span
/// ids (at-least-once delivery) are kept once. Groups come out in a stable order.
pub fn traces_data(rows: &[SpanRow]) -> Value {
    type Scopes<'a> = BTreeMap<(&'a str, &'a str), Vec<Value>>;
    let mut seen = std::collections::HashSet::new();
    let mut groups: BTreeMap<Vec<(String, String)>, Scopes> = BTreeMap::new();
    for r in rows {
        if !seen.insert((r.trace_id.as_str(), r.span_id.as_str())) {
            continue;
        }
        let mut resource = r.resource_attributes.clone();
        if !resource.iter().any(|(k, _)| k == "service.name") {
            resource.push(("service.name".into(), r.service_name.clone()));
        }
        resource.sort();
        groups
            .entry(resource)
            .or_default()
            .entry((r.scope_name.as_str(), r.scope_version.as_str()))
            .or_default()
            .push(span(r));
    }
    let resource_spans: Vec<Value> = groups
        .into_iter()
        .map(|(resource, scopes)| {
            let scope_spans: Vec<Value> = scopes
                .into_iter()
                .map(|((name, version), spans)| {
                    let mut scope = Map::new();
                    put_nonempty(&mut scope, "name", name);
                    put_nonempty(&mut scope, "version", version);
                    json!({"scope": scope, "spans": spans})
                })
                .collect();
            json!({"resource": {"attributes": attributes(&resource)}, "scopeSpans": scope_spans})
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str, host: &str, span: &str, parent: &str) -> SpanRow {
        SpanRow {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: span.into(),
            parent_span_id: parent.into(),
            span_name: format!("op-{span}"),
            span_kind: "Server".into(),
            service_name: service.into(),
            resource_attributes: vec![
                ("service.name".into(), service.into()),
                ("host.name".into(), host.into()),
            ],
            span_attributes: vec![("http.status_code".into(), "200".into())],
            timestamp: 1_700_000_000_123_456_789,
            duration: 1_000,
            status_code: "Error".into(),
            scope_name: "lib".into(),
            ..Default::default()
        }
    }

    #[test]
    fn spans_are_grouped_by_resource_and_scope_with_proto3_json_spelling() {
        let rows = vec![
            row("a", "h1", "0000000000000001", ""),
            row("a", "h2", "0000000000000002", "0000000000000001"),
            row("a", "h1", "0000000000000003", "0000000000000001"),
            row("a", "h1", "0000000000000003", "0000000000000001"),
        ];
        let v = traces_data(&rows);
        let rs = v["resourceSpans"].as_array().unwrap();
        assert_eq!(rs.len(), 2, "two instances of service a: {v}");
        let first = &rs[0]["scopeSpans"][0];
        assert_eq!(first["scope"]["name"], "lib");
        assert_eq!(first["spans"].as_array().unwrap().len(), 2, "dup dropped");
        let s = &first["spans"][0];
        assert_eq!(s["kind"], 2);
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000123456789");
        assert_eq!(s["endTimeUnixNano"], "1700000000123457789");
        assert!(s.get("parentSpanId").is_none());
        // Stored values are strings; "200" stays a string (no invented type).
        assert_eq!(s["attributes"][0]["value"]["stringValue"], "200");
    }
}
