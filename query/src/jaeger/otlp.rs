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
use serde::Serialize;

// The wire types. Fields are declared in alphabetical order of their JSON names: the order the
// `serde_json::Value` bodies these replaced had (pinned in `wire_tests.rs`).

/// `TracesData`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TracesData<'a> {
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: Vec<ScopeSpans<'a>>,
}

#[derive(Serialize, Debug)]
struct Resource<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize, Debug)]
struct ScopeSpans<'a> {
    scope: Scope<'a>,
    spans: Vec<Span<'a>>,
}

#[derive(Serialize, Debug)]
struct Scope<'a> {
    #[serde(skip_serializing_if = "empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "empty")]
    version: &'a str,
}

/// `{"key", "value": {"stringValue"}}`.
#[derive(Serialize, Debug)]
pub struct KeyValue<'a> {
    key: &'a str,
    value: StringValue<'a>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StringValue<'a> {
    string_value: &'a str,
}

/// One span in OTLP JSON.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Span<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<KeyValue<'a>>,
    end_time_unix_nano: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events: Vec<Event<'a>>,
    #[serde(skip_serializing_if = "zero")]
    kind: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link<'a>>,
    name: &'a str,
    #[serde(skip_serializing_if = "empty")]
    parent_span_id: &'a str,
    span_id: &'a str,
    start_time_unix_nano: String,
    status: Status<'a>,
    trace_id: &'a str,
    #[serde(skip_serializing_if = "empty")]
    trace_state: &'a str,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<KeyValue<'a>>,
    name: &'a str,
    time_unix_nano: String,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Link<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<KeyValue<'a>>,
    span_id: &'a str,
    trace_id: &'a str,
    #[serde(skip_serializing_if = "empty")]
    trace_state: &'a str,
}

#[derive(Serialize, Debug)]
struct Status<'a> {
    #[serde(skip_serializing_if = "zero")]
    code: i32,
    #[serde(skip_serializing_if = "empty")]
    message: &'a str,
}

fn empty(s: &&str) -> bool {
    s.is_empty()
}

fn zero(n: &i32) -> bool {
    *n == 0
}

/// Attributes sorted by key.
fn attributes<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<KeyValue<'a>> {
    let mut sorted: Vec<(&str, &str)> = pairs.into_iter().collect();
    sorted.sort();
    sorted
        .into_iter()
        .map(|(key, v)| KeyValue {
            key,
            value: StringValue { string_value: v },
        })
        .collect()
}

fn pairs(a: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    a.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// One span in OTLP JSON.
pub fn span(r: &SpanRow) -> Span<'_> {
    let events = r
        .events_name
        .iter()
        .enumerate()
        .map(|(i, name)| Event {
            attributes: r
                .events_attributes
                .get(i)
                .map(|a| attributes(pairs(a)))
                .unwrap_or_default(),
            name,
            time_unix_nano: r.events_timestamp.get(i).copied().unwrap_or(0).to_string(),
        })
        .collect();
    let links = r
        .links_span_id
        .iter()
        .enumerate()
        .map(|(i, span_id)| Link {
            attributes: r
                .links_attributes
                .get(i)
                .map(|a| attributes(pairs(a)))
                .unwrap_or_default(),
            span_id,
            trace_id: r.links_trace_id.get(i).map_or("", |s| s.as_str()),
            trace_state: r.links_trace_state.get(i).map_or("", |s| s.as_str()),
        })
        .collect();
    Span {
        attributes: attributes(pairs(&r.span_attributes)),
        end_time_unix_nano: (r.timestamp + r.duration as i64).to_string(),
        events,
        kind: kind::to_otlp(&r.span_kind),
        links,
        name: &r.span_name,
        parent_span_id: &r.parent_span_id,
        span_id: &r.span_id,
        start_time_unix_nano: r.timestamp.to_string(),
        status: Status {
            code: status::to_otlp(&r.status_code),
            message: &r.status_message,
        },
        trace_id: &r.trace_id,
        trace_state: &r.trace_state,
    }
}

/// Spans grouped as OTLP does: one `resourceSpans` per distinct resource (service name plus
/// resource attributes), one `scopeSpans` per (scope name, version) inside it. Duplicate span
/// ids (at-least-once delivery) are kept once. Groups come out in a stable order.
pub fn traces_data(rows: &[SpanRow]) -> TracesData<'_> {
    type Scopes<'a> = BTreeMap<(&'a str, &'a str), Vec<Span<'a>>>;
    let mut seen = std::collections::HashSet::new();
    let mut groups: BTreeMap<Vec<(&str, &str)>, Scopes> = BTreeMap::new();
    for r in rows {
        if !seen.insert((r.trace_id.as_str(), r.span_id.as_str())) {
            continue;
        }
        let mut resource: Vec<(&str, &str)> = pairs(&r.resource_attributes).collect();
        if !resource.iter().any(|(k, _)| *k == "service.name") {
            resource.push(("service.name", r.service_name.as_str()));
        }
        resource.sort();
        groups
            .entry(resource)
            .or_default()
            .entry((r.scope_name.as_str(), r.scope_version.as_str()))
            .or_default()
            .push(span(r));
    }
    let resource_spans = groups
        .into_iter()
        .map(|(resource, scopes)| ResourceSpans {
            resource: Resource {
                attributes: attributes(resource),
            },
            scope_spans: scopes
                .into_iter()
                .map(|((name, version), spans)| ScopeSpans {
                    scope: Scope { name, version },
                    spans,
                })
                .collect(),
        })
        .collect();
    TracesData { resource_spans }
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
        let v = serde_json::to_value(traces_data(&rows)).unwrap();
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
