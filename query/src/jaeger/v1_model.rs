//! Stored spans as one trace in Jaeger's v1 UI JSON model, translated the way Jaeger's
//! OTLP→Jaeger translator does it (opentelemetry-collector-contrib `pkg/translator/jaeger`):
//! processes keyed by (service, resource tags), `span.kind` for every kind but unspecified,
//! `otel.status_code` / `error` / `otel.status_description`, `otel.scope.*`,
//! `w3c.tracestate`, links as `FOLLOWS_FROM` unless their `opentracing.ref_type` says
//! `child_of`, an `event` log field only when the event has a name and no `event` attribute,
//! and 64-bit trace ids printed as 16 hex digits.
//!
//! Tag values are strings (the stored form; see docs/query.md "Attribute types"), except the
//! `error` tag, which Jaeger always types `bool`.

use std::collections::{BTreeMap, HashSet};

use orrery_store::SpanRow;
use orrery_store::span::{kind, status};
use serde::Serialize;

use super::params::v1_trace_id;

// Jaeger's v1 JSON model, typed. Fields are declared in alphabetical order: the answer used to
// be a `serde_json::Value`, whose objects print their keys sorted, and the wire stays
// byte-identical (pinned in `jaeger/wire_tests.rs`).

/// One trace (`data[i]` of `/api/traces`).
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// `p1`, `p2`, … (ordered as strings, as before).
    pub processes: BTreeMap<String, Process>,
    pub spans: Vec<Span>,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Shown by the Jaeger UI in the trace's header (a truncated trace says so).
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    #[serde(rename = "serviceName")]
    pub service_name: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// µs.
    pub duration: u64,
    pub flags: u32,
    pub logs: Vec<Log>,
    #[serde(rename = "operationName")]
    pub operation_name: String,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub references: Vec<Reference>,
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Unix µs.
    #[serde(rename = "startTime")]
    pub start_time: i64,
    pub tags: Vec<Tag>,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    /// `CHILD_OF` or `FOLLOWS_FROM`.
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(rename = "traceID")]
    pub trace_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Log {
    pub fields: Vec<Tag>,
    /// Unix µs.
    pub timestamp: i64,
}

/// A tag: `string` typed (the stored form), but `error`, which Jaeger types `bool`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: TagValue,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TagValue {
    String(String),
    Bool(bool),
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_string(),
        kind: "string",
        value: TagValue::String(value.to_string()),
    }
}

fn tags(pairs: &[(String, String)]) -> Vec<Tag> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted.into_iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace in Jaeger's JSON model (`processes` keyed `p1`, `p2`, … per distinct
/// service + resource tags, in order of first appearance).
pub fn trace_json(trace_id: &str, rows: Vec<SpanRow>) -> Trace {
    let mut seen = HashSet::new();
    let rows: Vec<SpanRow> = rows
        .into_iter()
        .filter(|r| seen.insert(r.span_id.clone()))
        .collect();
    let mut process_ids: BTreeMap<(String, Vec<(String, String)>), String> = BTreeMap::new();
    let mut processes = BTreeMap::new();
    let mut span_process = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut resource: Vec<(String, String)> = r
            .resource_attributes
            .iter()
            .filter(|(k, _)| k != "service.name")
            .cloned()
            .collect();
        resource.sort();
        let key = (r.service_name.clone(), resource);
        let next = process_ids.len() + 1;
        let pid = process_ids
            .entry(key)
            .or_insert_with_key(|(service, resource)| {
                let pid = format!("p{next}");
                processes.insert(
                    pid.clone(),
                    Process {
                        service_name: service.clone(),
                        tags: tags(resource),
                    },
                );
                pid
            });
        span_process.push(pid.clone());
    }
    let trace_id = v1_trace_id(trace_id);
    let spans: Vec<Span> = rows
        .iter()
        .zip(span_process)
        .map(|(r, pid)| span_json(r, trace_id, pid))
        .collect();
    Trace {
        processes,
        spans,
        trace_id: trace_id.to_string(),
        warnings: None,
    }
}

fn span_json(r: &SpanRow, trace_id: &str, pid: String) -> Span {
    let mut references = Vec::new();
    if !r.parent_span_id.is_empty() {
        references.push(Reference {
            ref_type: "CHILD_OF",
            span_id: r.parent_span_id.clone(),
            trace_id: trace_id.to_string(),
        });
    }
    for (i, sid) in r.links_span_id.iter().enumerate() {
        let child_of = r.links_attributes.get(i).is_some_and(|a| {
            a.iter()
                .any(|(k, v)| k == "opentracing.ref_type" && v.eq_ignore_ascii_case("child_of"))
        });
        let link_trace = r
            .links_trace_id
            .get(i)
            .map(|t| v1_trace_id(t))
            .unwrap_or("");
        references.push(Reference {
            ref_type: if child_of { "CHILD_OF" } else { "FOLLOWS_FROM" },
            span_id: sid.clone(),
            trace_id: link_trace.to_string(),
        });
    }
    let mut t = tags(&r.span_attributes);
    let k = kind::to_otlp(&r.span_kind);
    if (1..=5).contains(&k) {
        t.push(tag("span.kind", &kind::from_otlp(k).to_ascii_lowercase()));
    }
    match status::to_otlp(&r.status_code) {
        2 => {
            t.push(Tag {
                key: "error".into(),
                kind: "bool",
                value: TagValue::Bool(true),
            });
            t.push(tag("otel.status_code", "ERROR"));
        }
        1 => t.push(tag("otel.status_code", "OK")),
        _ => {}
    }
    if !r.status_message.is_empty() {
        t.push(tag("otel.status_description", &r.status_message));
    }
    if !r.scope_name.is_empty() {
        t.push(tag("otel.scope.name", &r.scope_name));
    }
    if !r.scope_version.is_empty() {
        t.push(tag("otel.scope.version", &r.scope_version));
    }
    if !r.trace_state.is_empty() {
        t.push(tag("w3c.tracestate", &r.trace_state));
    }
    let logs: Vec<Log> = r
        .events_name
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let attrs = r
                .events_attributes
                .get(i)
                .map(|a| a.as_slice())
                .unwrap_or(&[]);
            let mut fields = Vec::with_capacity(attrs.len() + 1);
            if !name.is_empty() && !attrs.iter().any(|(k, _)| k == "event") {
                fields.push(tag("event", name));
            }
            fields.extend(tags(attrs));
            Log {
                timestamp: r.events_timestamp.get(i).copied().unwrap_or(0) / 1000,
                fields,
            }
        })
        .collect();
    Span {
        trace_id: trace_id.to_string(),
        span_id: r.span_id.clone(),
        flags: 1,
        operation_name: r.span_name.clone(),
        references,
        start_time: r.timestamp / 1000,
        duration: r.duration / 1000,
        tags: t,
        logs,
        process_id: pid,
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(span: &str, host: &str) -> SpanRow {
        SpanRow {
            trace_id: format!("{}{}", "0".repeat(16), "a".repeat(16)),
            span_id: span.into(),
            service_name: "api".into(),
            resource_attributes: vec![
                ("service.name".into(), "api".into()),
                ("host.name".into(), host.into()),
            ],
            span_kind: "Internal".into(),
            ..Default::default()
        }
    }

    #[test]
    fn processes_are_per_service_and_tags_and_small_translations_match_jaeger() {
        let mut a = row("0000000000000001", "h1");
        a.trace_state = "vendor=x".into();
        a.events_name = vec!["".into(), "boom".into(), "named".into()];
        a.events_timestamp = vec![1000, 2000, 3000];
        a.events_attributes = vec![
            vec![("k".into(), "v".into())],
            vec![("event".into(), "explicit".into())],
            vec![],
        ];
        a.links_trace_id = vec!["b".repeat(32), "c".repeat(32)];
        a.links_span_id = vec!["1".repeat(16), "2".repeat(16)];
        a.links_trace_state = vec![String::new(), String::new()];
        a.links_attributes = vec![
            vec![("opentracing.ref_type".into(), "child_of".into())],
            vec![],
        ];
        let b = row("0000000000000002", "h2");
        let c = row("0000000000000003", "h1");
        let t = serde_json::to_value(trace_json(&a.trace_id.clone(), vec![a, b, c])).unwrap();
        assert_eq!(t["traceID"], "a".repeat(16), "64-bit id printed as 16 hex");
        let procs = t["processes"].as_object().unwrap();
        assert_eq!(procs.len(), 2, "{t}");
        let spans = t["spans"].as_array().unwrap();
        assert_eq!(spans[0]["processID"], spans[2]["processID"]);
        assert_ne!(spans[0]["processID"], spans[1]["processID"]);
        let p1 = &procs[spans[1]["processID"].as_str().unwrap()];
        assert_eq!(
            p1["tags"][0],
            json!({"key": "host.name", "type": "string", "value": "h2"})
        );
        let s = &spans[0];
        let tags = s["tags"].as_array().unwrap();
        assert!(tags.contains(&json!(tag("span.kind", "internal"))));
        assert!(tags.contains(&json!(tag("w3c.tracestate", "vendor=x"))));
        assert_eq!(s["references"][0]["refType"], "CHILD_OF");
        assert_eq!(s["references"][1]["refType"], "FOLLOWS_FROM");
        // No event field for an unnamed event, nor over an explicit `event` attribute.
        assert_eq!(s["logs"][0]["fields"], json!([tag("k", "v")]));
        assert_eq!(s["logs"][1]["fields"], json!([tag("event", "explicit")]));
        assert_eq!(s["logs"][2]["fields"], json!([tag("event", "named")]));
    }
}
