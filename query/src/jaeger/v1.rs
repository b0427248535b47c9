//! Jaeger's v1 HTTP API (`/api/services`, `/api/operations`, `/api/traces`,
//! `/api/traces/{id}`, `/api/dependencies`) with Jaeger's parameters, defaults and envelopes
//! (`{"data", "total", "limit", "offset", "errors"}`), as jaeger-query answers them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::search::{self, Query as Search};
use super::{LoadError, MAX_TRACE_IDS, by_trace, catalog_window, params as jp, v1_model};
use crate::graph::{self, Span as Window, fetch};
use crate::params;
use crate::params::url_decode_pairs;
use crate::state::AppState;

/// Jaeger's default `limit`.
const DEFAULT_LIMIT: usize = 100;
/// Jaeger UI's default lookback when `start` is absent.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(2 * 86_400);

/// Jaeger's v1 answer envelope. Fields in alphabetical order: the body used to be a
/// `serde_json::Value`, whose keys print sorted, and the wire stays byte-identical.
#[derive(Serialize)]
struct Envelope<T> {
    data: T,
    errors: Option<Vec<EnvelopeError>>,
    limit: u32,
    offset: u32,
    total: usize,
}

#[derive(Serialize)]
struct EnvelopeError {
    code: u16,
    msg: String,
    /// Set for a trace asked for by id and not found.
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

/// `GET /api/operations`' entries.
#[derive(Serialize)]
struct Operation {
    name: String,
    /// Lowercase; `""` for an unspecified kind (as Jaeger).
    #[serde(rename = "spanKind")]
    span_kind: String,
}

/// `GET /api/dependencies`' entries.
#[derive(Serialize)]
struct DependencyLink {
    #[serde(rename = "callCount")]
    call_count: u64,
    child: String,
    parent: String,
}

fn envelope<T: Serialize>(data: T, total: usize, errors: Option<Vec<EnvelopeError>>) -> Response {
    Json(Envelope {
        data,
        errors,
        limit: 0,
        offset: 0,
        total,
    })
    .into_response()
}

fn jaeger_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let error = EnvelopeError {
        code: status.as_u16(),
        msg: msg.into(),
        trace_id: None,
    };
    (
        status,
        Json(Envelope::<Option<()>> {
            data: None,
            errors: Some(vec![error]),
            limit: 0,
            offset: 0,
            total: 0,
        }),
    )
        .into_response()
}

fn storage_error(err: anyhow::Error) -> Response {
    if let Some(response) = super::limited_response(&err, jaeger_error) {
        return response;
    }
    tracing::warn!(error = %format!("{err:#}"), "jaeger API query failed");
    jaeger_error(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
}

fn load_error(err: LoadError) -> Response {
    match err {
        LoadError::TooMany(msg) => jaeger_error(StatusCode::BAD_REQUEST, msg),
        LoadError::Storage(e) => storage_error(e),
    }
}

/// A window from nanosecond bounds. Unlike the map's windows there is no length cap: Jaeger
/// has none, retention bounds what is read, and the per-query limits bound the cost. The ends
/// are clamped to ±(2100 − 1970) (no span lies outside 1970..2100; a window may still start
/// before 1970, as a lookback from a small `now` does), so that the minute arithmetic on them
/// cannot overflow (`lookback=9223371982612` once panicked in the graph's range budget).
fn window(start: i64, end: i64, now: i64) -> Result<Window, String> {
    let latest = crate::params::MAX_TIMESTAMP_MS * 1_000_000;
    let (start, end) = (start.clamp(-latest, latest), end.clamp(-latest, latest));
    if end <= start {
        return Err("the window is empty: start must be before end".into());
    }
    Ok(Window {
        lo: start,
        hi: end,
        now,
    })
}

/// `GET /api/services`' answer: the names in Jaeger's envelope.
pub fn services_body(services: Vec<String>) -> Response {
    let n = services.len();
    envelope(services, n, None)
}

pub async fn services_handler(State(state): State<AppState>) -> Response {
    match super::services(&state.ch(), catalog_window(crate::now_ns())).await {
        Ok(s) => services_body(s),
        Err(e) => storage_error(e),
    }
}

pub async fn service_operations_handler(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Response {
    match super::operations(&state.ch(), catalog_window(crate::now_ns()), &service, None).await {
        Ok(ops) => {
            let mut names: Vec<String> = ops.into_iter().map(|(n, _)| n).collect();
            names.dedup();
            let n = names.len();
            envelope(json!(names), n, None)
        }
        Err(e) => storage_error(e),
    }
}

pub async fn operations_handler(State(state): State<AppState>, req: Request) -> Response {
    let q: HashMap<String, String> = url_decode_pairs(req.uri().query().unwrap_or("")).collect();
    let Some(service) = q.get("service").filter(|s| !s.is_empty()) else {
        return jaeger_error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let want = q
        .get("spanKind")
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str());
    match super::operations(&state.ch(), catalog_window(crate::now_ns()), service, want).await {
        Ok(ops) => {
            let data: Vec<Operation> = ops
                .iter()
                .map(|(n, k)| {
                    // Jaeger reports an unset kind as "".
                    let k = if k == "Unspecified" {
                        String::new()
                    } else {
                        k.to_ascii_lowercase()
                    };
                    Operation {
                        name: n.clone(),
                        span_kind: k,
                    }
                })
                .collect();
            let n = data.len();
            envelope(data, n, None)
        }
        Err(e) => storage_error(e),
    }
}

/// Jaeger's v1 search parameters → a search, its window and the `traceID`s asked for.
/// Repeated `tags` (JSON objects) and `tag` (`key:value`) parameters are merged.
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
        .map(|(_, v)| jp::trace_id(v))
        .collect::<Result<_, _>>()?;
    if trace_ids.len() > MAX_TRACE_IDS {
        return Err(format!(
            "{} traceID parameters: at most {MAX_TRACE_IDS} per request; split the request",
            trace_ids.len()
        ));
    }
    let mut s = Search {
        limit: DEFAULT_LIMIT,
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
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        match k.as_str() {
            "tags" if !v.is_empty() => {
                let obj: BTreeMap<String, Value> = serde_json::from_str(v)
                    .map_err(|e| format!("malformed 'tags' parameter: {e}"))?;
                for (k, v) in obj {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    tags.insert(k, v);
                }
            }
            "tag" => {
                let (key, value) = v.split_once(':').ok_or_else(|| {
                    format!("malformed 'tag' parameter {v:?}: expected key:value")
                })?;
                tags.insert(key.to_string(), value.to_string());
            }
            _ => {}
        }
    }
    s.tags = tags.into_iter().collect();
    search::check_tags(&s.tags)?;
    let ms = Duration::from_millis(1);
    if let Some(v) = q.get("minDuration").filter(|v| !v.is_empty()) {
        s.min_duration_ns = Some(params::duration("minDuration", v, ms)?.as_nanos() as u64);
    }
    if let Some(v) = q.get("maxDuration").filter(|v| !v.is_empty()) {
        s.max_duration_ns = Some(params::duration("maxDuration", v, ms)?.as_nanos() as u64);
    }
    if let (Some(a), Some(b)) = (s.min_duration_ns, s.max_duration_ns)
        && b < a
    {
        return Err("'maxDuration' should be greater than 'minDuration'".into());
    }
    if let Some(v) = q.get("limit").filter(|v| !v.is_empty()) {
        s.limit = super::check_limit("limit", params::int("limit", v)?)?;
    }
    // Jaeger: start/end in microseconds; `lookback` like `1h` when start is absent.
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
                .map(|v| params::duration("lookback", v, ms))
                .transpose()?
                .unwrap_or(DEFAULT_LOOKBACK);
            end.saturating_sub(lb.as_nanos().min(i64::MAX as u128) as i64)
        }
    };
    let w = window(start, end, now)?;
    Ok((s, w, trace_ids))
}

pub async fn search_handler(State(state): State<AppState>, req: Request) -> Response {
    let pairs: Vec<(String, String)> = url_decode_pairs(req.uri().query().unwrap_or("")).collect();
    let (search, w, trace_ids) = match parse_search(&pairs, crate::now_ns()) {
        Ok(v) => v,
        Err(e) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    let ids = if trace_ids.is_empty() {
        match search::search_ids(&state.ch(), w, &search).await {
            Ok(ids) => ids,
            Err(e) => return storage_error(e),
        }
    } else {
        let mut seen = HashSet::new();
        trace_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .cloned()
            .collect()
    };
    // Whole traces, not only their spans inside the window: the results table shows each
    // trace's root, name and duration.
    let max = state.args.limits.query_max_trace_spans;
    let mut spans = match super::load_whole_traces(&state.ch(), &ids, max).await {
        Ok(rows) => by_trace(rows),
        Err(e) => return load_error(e),
    };
    let mut errors = Vec::new();
    let data: Vec<v1_model::Trace> = ids
        .iter()
        .filter_map(|id| match spans.remove(id) {
            Some(rows) => Some(v1_model::trace_json(id, rows)),
            None => {
                errors.push(EnvelopeError {
                    code: 404,
                    msg: "trace not found".into(),
                    trace_id: Some(jp::v1_trace_id(id).to_string()),
                });
                None
            }
        })
        .collect();
    let n = data.len();
    envelope(data, n, (!errors.is_empty()).then_some(errors))
}

pub async fn trace_handler(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match jp::trace_id(&id) {
        Ok(id) => id,
        Err(e) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    let max = state.args.limits.query_max_trace_spans;
    match crate::traces::load_spans_capped(&state.ch(), &id, max).await {
        Ok((rows, _)) if rows.is_empty() => jaeger_error(StatusCode::NOT_FOUND, "trace not found"),
        Ok((rows, truncated)) => {
            let mut trace = v1_model::trace_json(&id, rows);
            if truncated {
                // The Jaeger UI shows a trace's warnings in its header.
                trace.warnings = Some(vec![format!(
                    "trace truncated: only its first {max} spans by start time are shown \
                     (--query-max-trace-spans)"
                )]);
            }
            envelope([trace], 1, None)
        }
        Err(e) => storage_error(e),
    }
}

pub async fn dependencies_handler(State(state): State<AppState>, req: Request) -> Response {
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
        // Minute-aligned so whole hours come from the rollups, whatever the length.
        let w = window(end.saturating_sub(lookback), end, now)?;
        let minute = 60_000_000_000;
        Ok(Window {
            lo: w.lo.div_euclid(minute) * minute,
            hi: (w.hi + minute - 1).div_euclid(minute) * minute,
            now,
        })
    })();
    let w = match parsed {
        Ok(w) => w,
        Err(e) => return jaeger_error(StatusCode::BAD_REQUEST, e),
    };
    let rows = fetch::edges(
        &state.ch(),
        state.graph_args(),
        &state.runtime.cache,
        w,
        fetch::Grouping::Services,
        &fetch::EdgeFilter::None,
    )
    .await;
    match rows {
        Ok(rows) => {
            let edges: Vec<(String, String, u64)> = rows
                .iter()
                .filter(|r| r.kind != "orphan" && r.source != graph::INTERNET)
                .map(|r| (r.source.clone(), r.target.clone(), r.requests))
                .collect();
            let data: Vec<DependencyLink> = dependency_links(&edges)
                .into_iter()
                .map(|(parent, child, call_count)| DependencyLink {
                    call_count,
                    child,
                    parent,
                })
                .collect();
            let n = data.len();
            envelope(data, n, None)
        }
        Err(e) => storage_error(e),
    }
}

/// Jaeger dependency links from map edges: a virtual node (`database:orders-db`,
/// `queue:jobs`, `external:api.stripe.com`) is shown by its bare name, as Jaeger names the
/// peer, unless a real service has that name — then it keeps its prefix so the two never
/// merge. Edges that end up with the same (parent, child) are summed.
pub fn dependency_links(edges: &[(String, String, u64)]) -> Vec<(String, String, u64)> {
    let services: HashSet<&str> = edges
        .iter()
        .flat_map(|(s, t, _)| [s.as_str(), t.as_str()])
        .filter(|n| graph::node_kind(n) == graph::NodeKind::Service)
        .collect();
    let mut merged: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (source, target, n) in edges {
        let id = graph::NodeId::parse(target);
        let child = match id.kind() {
            graph::NodeKind::Service => target.clone(),
            _ if !id.name().is_empty() && !services.contains(id.name()) => id.name().to_string(),
            _ => target.clone(),
        };
        *merged.entry((source.clone(), child)).or_default() += n;
    }
    merged.into_iter().map(|((p, c), n)| (p, c, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url_decode_pairs(q).collect()
    }

    #[test]
    fn jaeger_defaults_limit_100_lookback_two_days() {
        let now = 10 * 86_400_000_000_000;
        let (s, w, ids) = parse_search(&pairs("service=a"), now).unwrap();
        assert_eq!(s.limit, 100);
        assert_eq!(w.hi - w.lo, 2 * 86_400_000_000_000);
        assert!(ids.is_empty());
        // 90 days, as Grafana's "Last 90 days" sends it: served.
        let end_us = now / 1000;
        let start_us = end_us - 90 * 86_400_000_000;
        let (_, w, _) = parse_search(
            &pairs(&format!("service=a&start={start_us}&end={end_us}")),
            now,
        )
        .unwrap();
        assert_eq!(w.hi - w.lo, 90 * 86_400_000_000_000);
    }

    #[test]
    fn repeated_tags_are_merged_and_checked() {
        let (s, _, _) = parse_search(
            &pairs("service=a&tags=%7B%22x%22%3A%221%22%7D&tags=%7B%22y%22%3A2%7D&tag=z:3&tag=span.kind:server"),
            0,
        )
        .unwrap();
        assert_eq!(
            s.tags,
            vec![
                ("span.kind".into(), "server".into()),
                ("x".into(), "1".into()),
                ("y".into(), "2".into()),
                ("z".into(), "3".into())
            ]
        );
        assert!(parse_search(&pairs("service=a&tag=error:perhaps"), 0).is_err());
    }

    #[test]
    fn hostile_search_parameters_are_400s() {
        let err = parse_search(&pairs("service=a&minDuration=2s&maxDuration=1s"), 0).unwrap_err();
        assert!(err.contains("maxDuration"), "{err}");
        assert!(
            parse_search(&pairs("service=a&limit=1501"), 0)
                .unwrap_err()
                .contains("1500")
        );
        assert!(parse_search(&pairs("service=a&limit=0"), 0).is_err());
        let many: String = (0..101).map(|i| format!("traceID={i:x}&")).collect();
        assert!(
            parse_search(&pairs(&many), 0)
                .unwrap_err()
                .contains("at most 100")
        );
        let hundred: String = (0..100).map(|i| format!("traceID={i:x}&")).collect();
        assert_eq!(parse_search(&pairs(&hundred), 0).unwrap().2.len(), 100);
        assert!(parse_search(&pairs("traceID=zz%21"), 0).is_err());
        assert!(parse_search(&pairs("service=a&tags=%7Bnot-json"), 0).is_err());
        assert!(parse_search(&pairs("service=a&start=5&end=5"), 0).is_err());
    }

    #[test]
    fn dependencies_keep_virtual_nodes_apart_from_services() {
        let edges = vec![
            ("api".to_string(), "orders".to_string(), 3),
            ("api".to_string(), "database:orders".to_string(), 5),
            ("api".to_string(), "database:pg".to_string(), 2),
            ("api".to_string(), "external:pg".to_string(), 1),
        ];
        assert_eq!(
            dependency_links(&edges),
            vec![
                ("api".into(), "database:orders".into(), 5),
                ("api".into(), "orders".into(), 3),
                ("api".into(), "pg".into(), 3),
            ]
        );
    }
}
