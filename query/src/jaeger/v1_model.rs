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
use serde_json::{Value, json};

use super::params::v1_trace_id;

fn tag(key: &str, value: &str) -> Value {
    json!({"key": key, "type": "string", "value": value})
}

fn tags(pairs: &[(String, String)]) -> Vec<Value> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted.into_iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace in Jaeger's JSON model (`processes` keyed `p1`, `p2`, … per distinct
/// service + resource tags, in order of first appearance).
pub fn trace_json(trace_id: &str, rows: Vec<SpanRow>) -> Value {
    let mut seen = HashSet::new();
    let rows: Vec<SpanRow> = rows
        .into_iter()
        .filter(|r| seen.insert(r.span_id.clone()))
        .collect();
    let mut process_ids: BTreeMap<(String, Vec<(String, String)>), String> = BTreeMap::new();
    let mut processes = serde_json::Map::new();
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
                    json!({"serviceName": service, "tags": tags(resource)}),
                );
                pid
            });
        span_process.push(pid.clone());
    }
    let trace_id = v1_trace_id(trace_id);
    let spans: Vec<Value> = rows
        .iter()
        .zip(span_process)
        .map(|(r, pid)| span_json(r, trace_id, pid))
        .collect();
    json!({"traceID": trace_id, "spans": spans, "processes": processes, "warnings": null})
}

fn span_json(r: &SpanRow, trace_id: &str, pid: String) -> Value {
    let mut references = Vec::new();
    if !r.parent_span_id.is_empty() {
        references
            .push(json!({"refType": "CHILD_OF", "traceID": trace_id, "spanID": r.parent_span_id}));
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
        references.push(
            json!({"refType": if child_of { "CHILD_OF" } else { "FOLLOWS_FROM" },
            "traceID": link_trace, "spanID": sid}),
        );
    }
    let mut t = tags(&r.span_attributes);
    let k = kind::to_otlp(&r.span_kind);
    if (1..=5).contains(&k) {
        t.push(tag("span.kind", &kind::from_otlp(k).to_ascii_lowercase()));
    }
    match status::to_otlp(&r.status_code) {
        2 => {
            t.push(json!({"key": "error", "type": "bool", "value": true}));
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
    let logs: Vec<Value> = r
        .events_name
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let attrs = r.events_attributes.get(i).map(|a| a.as_slice()).unwrap_or(&[]);
            let mut fields = Vec::with_capacity(attrs.len() + 1);
            if !name.is_empty() && !attrs.iter().any(|(k, _)| k == "event") {
                fields.push(tag("event", name));
            }
            fields.extend(tags(attrs));
            json!({"timestamp": r.events_timestamp.get(i).copied().unwrap_or(0) / 1000, "fields": fields})
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": r.span_id,
        "flags": 1,
        "operationName": r.span_name,
        "references": references,
        "startTime": r.timestamp / 1000,
        "duration": r.duration / 1000,
        "tags": t,
        "logs": logs,
        "processID": pid,
        "warnings": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = trace_json(&a.trace_id.clone(), vec![a, b, c]);
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
        assert!(tags.contains(&tag("span.kind", "internal")));
        assert!(tags.contains(&tag("w3c.tracestate", "vendor=x")));
        assert_eq!(s["references"][0]["refType"], "CHILD_OF");
        assert_eq!(s["references"][1]["refType"], "FOLLOWS_FROM");
        // No event field for an unnamed event, nor over an explicit `event` attribute.
        assert_eq!(s["logs"][0]["fields"], json!([tag("k", "v")]));
        assert_eq!(s["logs"][1]["fields"], json!([tag("event", "explicit")]));
        assert_eq!(s["logs"][2]["fields"], json!([tag("event", "named")]));
    }
}
