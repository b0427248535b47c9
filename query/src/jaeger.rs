//! Jaeger-compatible HTTP API (`/api/...`) with Jaeger's JSON shapes, so Grafana's Jaeger data
//! source and the Jaeger UI work against Orrery unchanged.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clickhouse::{Client, Row};
use orrery_store::SpanRow;
use orrery_store::span::{kind, status};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{AppState, url_decode_pairs};
use crate::graph::{self, Span as Window, fetch};
use crate::params;
use crate::traces::{self, Order, Search};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/services", get(services_handler))
        .route(
            "/api/services/{service}/operations",
            get(service_operations_handler),
        )
        .route("/api/operations", get(operations_handler))
        .route("/api/traces", get(search_handler))
        .route("/api/traces/{id}", get(trace_handler))
        .route("/api/dependencies", get(dependencies_handler))
}

fn envelope(data: Value, total: usize) -> Response {
    Json(json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

fn jaeger_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    (
        status,
        Json(json!({"data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status.as_u16(), "msg": msg}]})),
    )
        .into_response()
}

fn storage_error(err: anyhow::Error) -> Response {
    tracing::warn!(error = %format!("{err:#}"), "jaeger API query failed");
    jaeger_error(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct NameKind {
    name: String,
    kind: String,
}

/// Services with spans in the window, sorted.
pub async fn services(client: &Client, w: Window) -> Result<Vec<String>> {
    let rows: Vec<Name> = client
        .query(
            "SELECT DISTINCT toString(ServiceName) AS name FROM otel_traces
             WHERE Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
             ORDER BY name",
        )
        .param("lo", w.lo)
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("listing services")?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// (operation, span kind as stored in the current spelling) of a service, sorted.
pub async fn operations(
    client: &Client,
    w: Window,
    service: &str,
    span_kind: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let rows: Vec<NameKind> = client
        .query(
            "SELECT DISTINCT toString(SpanName) AS name, toString(SpanKind) AS kind FROM otel_traces
             WHERE ServiceName = {service:String}
               AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
             ORDER BY name, kind",
        )
        .param("service", service)
        .param("lo", w.lo)
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("listing operations")?;
    let mut out: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| (r.name, kind::from_otlp(kind::to_otlp(&r.kind)).to_string()))
        .filter(|(_, k)| span_kind.is_none_or(|want| k.eq_ignore_ascii_case(want)))
        .collect();
    out.dedup();
    Ok(out)
}

fn lookback_window(now: i64) -> Window {
    params::span(now - 7 * 86_400_000_000_000, now, now).expect("a 7-day window is valid")
}

async fn services_handler(State(state): State<AppState>) -> Response {
    match services(&state.client, lookback_window(crate::now_ns())).await {
        Ok(s) => {
            let n = s.len();
            envelope(json!(s), n)
        }
        Err(e) => storage_error(e),
    }
}

async fn service_operations_handler(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Response {
    match operations(
        &state.client,
        lookback_window(crate::now_ns()),
        &service,
        None,
    )
    .await
    {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(n, _)| n).collect();
            names.dedup();
            let n = names.len();
            envelope(json!(names), n)
        }
        Err(e) => storage_error(e),
    }
}

async fn operations_handler(State(state): State<AppState>, req: Request) -> Response {
    let q: HashMap<String, String> = url_decode_pairs(req.uri().query().unwrap_or("")).collect();
    let Some(service) = q.get("service").filter(|s| !s.is_empty()) else {
        return jaeger_error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let want = q
        .get("spanKind")
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str());
    match operations(
        &state.client,
        lookback_window(crate::now_ns()),
        service,
        want,
    )
    .await
    {
        Ok(ops) => {
            let data: Vec<Value> = ops
                .iter()
                .map(|(n, k)| json!({"name": n, "spanKind": k.to_ascii_lowercase()}))
                .collect();
            let n = data.len();
            envelope(json!(data), n)
        }
        Err(e) => storage_error(e),
    }
}

/// Jaeger's search parameters → an Orrery search and window.
pub fn parse_search(
    pairs: &[(String, String)],
    now: i64,
) -> Result<(Search, Window, Vec<String>), String> {
    let q: HashMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let trace_ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| traces::normalize_trace_id(v))
        .collect::<Result<_, _>>()?;
    let mut s = Search {
        limit: 20,
        order: Order::Newest,
        ..Default::default()
    };
    s.service = q
        .get("service")
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string());
    if s.service.is_none() && trace_ids.is_empty() {
        return Err("parameter 'service' is required".into());
    }
    s.operation = q
        .get("operation")
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string());
    let mut tags: Vec<(String, String)> = Vec::new();
    if let Some(t) = q.get("tags").filter(|v| !v.is_empty()) {
        let obj: BTreeMap<String, Value> =
            serde_json::from_str(t).map_err(|e| format!("malformed 'tags' parameter: {e}"))?;
        for (k, v) in obj {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push((k, v));
        }
    }
    for (k, v) in pairs {
        if k == "tag" {
            let (key, value) = v
                .split_once(':')
                .ok_or_else(|| format!("malformed 'tag' parameter {v:?}: expected key:value"))?;
            tags.push((key.to_string(), value.to_string()));
        }
    }
    for (k, v) in tags {
        // Jaeger's convention: error=true means the span's status is error.
        if k == "error" && v == "true" {
            s.errors_only = true;
        } else {
            s.attributes.push((k, v));
        }
    }
    let ms = Duration::from_millis(1);
    if let Some(v) = q.get("minDuration").filter(|v| !v.is_empty()) {
        s.min_duration_ns = Some(params::duration("minDuration", v, ms)?.as_nanos() as u64);
    }
    if let Some(v) = q.get("maxDuration").filter(|v| !v.is_empty()) {
        s.max_duration_ns = Some(params::duration("maxDuration", v, ms)?.as_nanos() as u64);
    }
    if let Some(v) = q.get("limit").filter(|v| !v.is_empty()) {
        let n = params::int("limit", v)?;
        if !(1..=1500).contains(&n) {
            return Err("limit: between 1 and 1500".into());
        }
        s.limit = n as usize;
    }
    // Jaeger: start/end in microseconds; lookback like `1h` when start is absent.
    let end = match q.get("end").filter(|v| !v.is_empty()) {
        Some(v) => params::int("end", v)?.saturating_mul(1000),
        None => now,
    };
    let start = match q.get("start").filter(|v| !v.is_empty()) {
        Some(v) => params::int("start", v)?.saturating_mul(1000),
        None => {
            let lb = q
                .get("lookback")
                .filter(|v| !v.is_empty() && **v != "custom")
                .map(|v| params::duration("lookback", v, Duration::from_millis(1)))
                .transpose()?
                .unwrap_or(Duration::from_secs(3600));
            end - lb.as_nanos() as i64
        }
    };
    let w = params::span(start, end, now)?;
    Ok((s, w, trace_ids))
}

/// Spans of several traces, grouped by trace id.
async fn load_many(
    client: &Client,
    ids: &[String],
    w: Option<(Window, i64)>,
) -> Result<BTreeMap<String, Vec<SpanRow>>> {
    let mut out: BTreeMap<String, Vec<SpanRow>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<SpanRow> = match w {
        Some((w, slack)) => client
            .query(
                "SELECT ?fields FROM otel_traces WHERE TraceId IN {ids:Array(String)}
                 AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({hi:Int64})
                 ORDER BY Timestamp",
            )
            .param("ids", ids)
            .param("lo", w.lo - slack)
            .param("hi", w.hi + slack)
            .fetch_all()
            .await
            .context("loading traces")?,
        None => {
            let mut all = Vec::new();
            for id in ids {
                all.extend(traces::load_spans(client, id).await?);
            }
            all
        }
    };
    for r in rows {
        out.entry(r.trace_id.clone()).or_default().push(r);
    }
    Ok(out)
}

async fn search_handler(State(state): State<AppState>, req: Request) -> Response {
    let pairs: Vec<(String, String)> = url_decode_pairs(req.uri().query().unwrap_or("")).collect();
    let (search, w, trace_ids) = match parse_search(&pairs, crate::now_ns()) {
        Ok(v) => v,
        Err(e) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    let result = async {
        if !trace_ids.is_empty() {
            return load_many(&state.client, &trace_ids, None)
                .await
                .map(|m| (trace_ids.clone(), m));
        }
        let ids = traces::search_ids(&state.client, w, &search).await?;
        let slack = state.graph_args().graph_parent_lookback.as_nanos() as i64;
        let spans = load_many(&state.client, &ids, Some((w, slack))).await?;
        Ok((ids, spans))
    }
    .await;
    match result {
        Ok((ids, mut spans)) => {
            let data: Vec<Value> = ids
                .iter()
                .filter_map(|id| spans.remove(id).map(|rows| trace_json(id, rows)))
                .collect();
            let n = data.len();
            envelope(json!(data), n)
        }
        Err(e) => storage_error(e),
    }
}

async fn trace_handler(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match traces::normalize_trace_id(&id) {
        Ok(id) => id,
        Err(e) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    match traces::load_spans(&state.client, &id).await {
        Ok(rows) if rows.is_empty() => jaeger_error(StatusCode::NOT_FOUND, "trace not found"),
        Ok(rows) => envelope(json!([trace_json(&id, rows)]), 1),
        Err(e) => storage_error(e),
    }
}

async fn dependencies_handler(State(state): State<AppState>, req: Request) -> Response {
    let q: HashMap<String, String> = url_decode_pairs(req.uri().query().unwrap_or("")).collect();
    let now = crate::now_ns();
    let parsed = (|| -> Result<Window, String> {
        let end = match q.get("endTs").filter(|v| !v.is_empty()) {
            Some(v) => params::int("endTs", v)?.saturating_mul(1_000_000),
            None => now,
        };
        let lookback = match q.get("lookback").filter(|v| !v.is_empty()) {
            Some(v) => params::int("lookback", v)?.saturating_mul(1_000_000),
            None => 86_400_000_000_000,
        };
        params::span(end - lookback, end, now)
    })();
    let w = match parsed {
        Ok(w) => w,
        Err(e) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    let rows = fetch::edges(
        &state.client,
        state.graph_args(),
        w,
        fetch::Grouping::Services,
        &fetch::EdgeFilter::None,
    )
    .await;
    match rows {
        Ok(rows) => {
            let data: Vec<Value> = rows
                .iter()
                .filter(|r| r.kind != "orphan" && r.source != graph::INTERNET)
                .map(|r| {
                    let child = match graph::node_kind(&r.target) {
                        "service" => r.target.clone(),
                        _ => r
                            .target
                            .split_once(':')
                            .map(|(_, n)| n.to_string())
                            .unwrap_or_default(),
                    };
                    json!({"parent": r.source, "child": child, "callCount": r.requests})
                })
                .collect();
            let n = data.len();
            envelope(json!(data), n)
        }
        Err(e) => storage_error(e),
    }
}

fn tag(key: &str, value: &str) -> Value {
    json!({"key": key, "type": "string", "value": value})
}

fn tags(pairs: &[(String, String)]) -> Vec<Value> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted.into_iter().map(|(k, v)| tag(k, v)).collect()
}

/// One trace in Jaeger's JSON model (`processes` keyed `p1`, `p2`, … per service).
pub fn trace_json(trace_id: &str, rows: Vec<SpanRow>) -> Value {
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<SpanRow> = rows
        .into_iter()
        .filter(|r| seen.insert(r.span_id.clone()))
        .collect();
    let mut process_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut processes = serde_json::Map::new();
    for r in &rows {
        if !process_ids.contains_key(&r.service_name) {
            let pid = format!("p{}", process_ids.len() + 1);
            let resource: Vec<(String, String)> = r
                .resource_attributes
                .iter()
                .filter(|(k, _)| k != "service.name")
                .cloned()
                .collect();
            processes.insert(
                pid.clone(),
                json!({"serviceName": r.service_name, "tags": tags(&resource)}),
            );
            process_ids.insert(r.service_name.clone(), pid);
        }
    }
    let spans: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut references = Vec::new();
            if !r.parent_span_id.is_empty() {
                references.push(json!({"refType": "CHILD_OF", "traceID": r.trace_id, "spanID": r.parent_span_id}));
            }
            for (i, sid) in r.links_span_id.iter().enumerate() {
                references.push(json!({"refType": "FOLLOWS_FROM",
                    "traceID": r.links_trace_id.get(i).cloned().unwrap_or_default(), "spanID": sid}));
            }
            let mut t = tags(&r.span_attributes);
            let k = kind::to_otlp(&r.span_kind);
            if (2..=5).contains(&k) {
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
            let logs: Vec<Value> = r
                .events_name
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let mut fields = vec![tag("event", name)];
                    fields.extend(tags(r.events_attributes.get(i).map(|a| a.as_slice()).unwrap_or(&[])));
                    json!({"timestamp": r.events_timestamp.get(i).copied().unwrap_or(0) / 1000, "fields": fields})
                })
                .collect();
            json!({
                "traceID": r.trace_id,
                "spanID": r.span_id,
                "flags": 1,
                "operationName": r.span_name,
                "references": references,
                "startTime": r.timestamp / 1000,
                "duration": r.duration / 1000,
                "tags": t,
                "logs": logs,
                "processID": process_ids[&r.service_name],
                "warnings": null,
            })
        })
        .collect();
    json!({"traceID": trace_id, "spans": spans, "processes": processes, "warnings": null})
}
