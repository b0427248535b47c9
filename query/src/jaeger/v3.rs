//! Jaeger's API v3 over HTTP (`/api/v3/…`), as Jaeger's own HTTP gateway answers it
//! (jaegertracing/jaeger `cmd/jaeger/internal/extension/jaegerquery/internal/apiv3`): the
//! Jaeger UI ≥ v2.19 discovers services and operations and searches through it, and Grafana's
//! Jaeger data source uses it with its v3 toggle on.
//!
//! - `GET /api/v3/services` → `{"services": [...]}`
//! - `GET /api/v3/operations?service=&spanKind=` → `{"operations": [{"name", "spanKind"}]}`
//! - `GET /api/v3/traces/{trace_id}` → `{"result": {"resourceSpans": …}}` (OTLP JSON)
//! - `GET /api/v3/traces?query.…` → the same envelope holding every found trace
//! - `GET /api/v3/trace-summaries?query.…` → `{"summaries": [...]}`
//!
//! Errors are `{"error": {"httpCode", "message"}}`; no trace found is a 404, as in Jaeger.

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::search::{self, Query as Search};
use super::{otlp, params as jp, summary};
use crate::graph::Span as Window;
use crate::params::url_decode_pairs;
use crate::state::AppState;

/// Jaeger's default `query.searchDepth`.
const DEFAULT_SEARCH_DEPTH: usize = 100;

// The v3 bodies, typed; fields in alphabetical order, as the `Value`s they replace printed.

/// The gateway's error body.
#[derive(Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize)]
struct ErrorDetail {
    #[serde(rename = "httpCode")]
    http_code: u16,
    message: String,
}

#[derive(Serialize)]
struct Services {
    services: Vec<String>,
}

#[derive(Serialize)]
struct Operations {
    operations: Vec<Operation>,
}

#[derive(Serialize)]
struct Operation {
    name: String,
    /// Lowercase; an unset kind is `internal` (as the gateway).
    #[serde(rename = "spanKind")]
    span_kind: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            http_code: status.as_u16(),
            message: message.into(),
        },
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response()
}

fn storage_error(err: anyhow::Error) -> Response {
    if let Some(response) = super::limited_response(&err, error) {
        return response;
    }
    tracing::warn!(error = %format!("{err:#}"), "jaeger API v3 query failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
}

fn ok(body: impl Serialize) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// First non-empty value of the canonical name, else of its deprecated snake_case alias
/// (Jaeger's `getQueryParam`), with the name that supplied it.
fn param<'a>(
    q: &'a HashMap<String, String>,
    canonical: &'a str,
    deprecated: &'a str,
) -> Option<(&'a str, &'a str)> {
    [canonical, deprecated].into_iter().find_map(|name| {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (name, v.as_str()))
    })
}

fn query_map(req: &Request) -> HashMap<String, String> {
    url_decode_pairs(req.uri().query().unwrap_or("")).collect()
}

/// Unknown `/api/v3/…` paths answer in the gateway's error shape.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such API v3 route")
}

/// `GET /api/v3/services`' answer.
pub fn services_body(services: Vec<String>) -> Response {
    ok(Services { services })
}

pub async fn services(State(state): State<AppState>) -> Response {
    match super::services(&state.ch(), super::catalog_window(crate::now_ns())).await {
        Ok(s) => services_body(s),
        Err(e) => storage_error(e),
    }
}

pub async fn operations(State(state): State<AppState>, req: Request) -> Response {
    let q = query_map(&req);
    let service = q.get("service").cloned().unwrap_or_default();
    let kind = param(&q, "spanKind", "span_kind").map(|(_, v)| v);
    let w = super::catalog_window(crate::now_ns());
    match super::operations(&state.ch(), w, &service, kind).await {
        Ok(ops) => {
            let operations: Vec<Operation> = ops
                .into_iter()
                .map(|(name, kind)| {
                    // The gateway reports an unset kind as "internal".
                    let k = match kind.as_str() {
                        "Unspecified" => "internal".to_string(),
                        k => k.to_ascii_lowercase(),
                    };
                    Operation { name, span_kind: k }
                })
                .collect();
            ok(Operations { operations })
        }
        Err(e) => storage_error(e),
    }
}

/// `query.*` parameters → search, window. Every failure is a 400 message naming the parameter.
pub fn parse_find(q: &HashMap<String, String>, now: i64) -> Result<(Search, Window), String> {
    let mut s = Search {
        limit: DEFAULT_SEARCH_DEPTH,
        ..Default::default()
    };
    s.service = param(q, "query.serviceName", "query.service_name").map(|(_, v)| v.to_string());
    s.operation =
        param(q, "query.operationName", "query.operation_name").map(|(_, v)| v.to_string());
    if let Some((name, v)) = param(q, "query.attributes", "query.attributes") {
        let map: HashMap<String, String> =
            serde_json::from_str(v).map_err(|e| format!("malformed parameter {name}: {e}"))?;
        let mut tags: Vec<(String, String)> = map.into_iter().collect();
        tags.sort();
        search::check_tags(&tags)?;
        s.tags = tags;
    }
    if q.get("query.filter").is_some_and(|v| !v.is_empty()) {
        return Err(
            "query.filter (expression filters) is not supported by Orrery; \
                    use query.attributes"
                .into(),
        );
    }
    let min = param(q, "query.startTimeMin", "query.start_time_min");
    let max = param(q, "query.startTimeMax", "query.start_time_max");
    let (Some((min_name, min)), Some((max_name, max))) = (min, max) else {
        return Err("query.startTimeMin and query.startTimeMax are required".into());
    };
    let lo = jp::rfc3339_nanos(min).map_err(|e| format!("malformed parameter {min_name}: {e}"))?;
    let hi = jp::rfc3339_nanos(max).map_err(|e| format!("malformed parameter {max_name}: {e}"))?;
    if lo >= hi {
        return Err("query.startTimeMin must be before query.startTimeMax".into());
    }
    let depth = param(q, "query.searchDepth", "query.search_depth")
        .or_else(|| param(q, "query.num_traces", "query.num_traces"));
    if let Some((name, v)) = depth {
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| format!("malformed parameter {name}: {v:?} is not an integer"))?;
        s.limit = super::check_limit(name, n)?;
    }
    if let Some((name, v)) = param(q, "query.durationMin", "query.duration_min") {
        s.min_duration_ns =
            Some(jp::go_duration_nanos(v).map_err(|e| format!("malformed parameter {name}: {e}"))?);
    }
    if let Some((name, v)) = param(q, "query.durationMax", "query.duration_max") {
        s.max_duration_ns =
            Some(jp::go_duration_nanos(v).map_err(|e| format!("malformed parameter {name}: {e}"))?);
    }
    if let (Some(a), Some(b)) = (s.min_duration_ns, s.max_duration_ns)
        && b < a
    {
        return Err("query.durationMax must not be less than query.durationMin".into());
    }
    Ok((s, Window { lo, hi, now }))
}

async fn find_ids(state: &AppState, q: HashMap<String, String>) -> Result<Vec<String>, Response> {
    let (search, w) =
        parse_find(&q, crate::now_ns()).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    search::search_ids(&state.ch(), w, &search)
        .await
        .map_err(storage_error)
}

pub async fn find_traces(State(state): State<AppState>, req: Request) -> Response {
    let ids = match find_ids(&state, query_map(&req)).await {
        Ok(ids) => ids,
        Err(resp) => return resp,
    };
    if ids.is_empty() {
        return error(StatusCode::NOT_FOUND, "No traces found");
    }
    let max = state.args.limits.query_max_trace_spans;
    match super::load_whole_traces(&state.ch(), &ids, max).await {
        Ok(rows) if rows.is_empty() => error(StatusCode::NOT_FOUND, "No traces found"),
        Ok(rows) => ok(TracesResult {
            result: otlp::traces_data(&rows),
        }),
        Err(super::LoadError::TooMany(msg)) => error(StatusCode::BAD_REQUEST, msg),
        Err(super::LoadError::Storage(e)) => storage_error(e),
    }
}

/// The body of `/api/v3/traces` and `/api/v3/traces/{id}`: the gateway's `{"result": …}`.
#[derive(Serialize)]
struct TracesResult<'a> {
    result: otlp::TracesData<'a>,
}

/// The body of `/api/v3/trace-summaries`.
#[derive(Serialize)]
pub(crate) struct SummariesBody<'a> {
    summaries: Vec<summary::TraceSummaryJson<'a>>,
}

pub(crate) fn summaries_body(sums: &[summary::TraceSummary]) -> SummariesBody<'_> {
    SummariesBody {
        summaries: sums.iter().map(|s| s.to_json()).collect(),
    }
}

pub async fn trace_summaries(State(state): State<AppState>, req: Request) -> Response {
    let ids = match find_ids(&state, query_map(&req)).await {
        Ok(ids) => ids,
        Err(resp) => return resp,
    };
    match summary::summaries(&state.ch(), &ids).await {
        Ok(sums) => ok(summaries_body(&sums)),
        Err(e) => storage_error(e),
    }
}

pub async fn get_trace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let id = match jp::trace_id(&id) {
        Ok(id) => id,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed parameter trace_id: {e}"),
            );
        }
    };
    // startTime/endTime/rawTraces are accepted as Jaeger does; Orrery always reads the whole
    // trace (the TraceId bloom filter makes the window unnecessary) and never adjusts spans.
    let q = query_map(&req);
    drop(req);
    for (canonical, deprecated) in [("startTime", "start_time"), ("endTime", "end_time")] {
        if let Some((name, v)) = param(&q, canonical, deprecated)
            && let Err(e) = jp::rfc3339_nanos(v)
        {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed parameter {name}: {e}"),
            );
        }
    }
    if let Some((name, v)) = param(&q, "rawTraces", "raw_traces")
        && !matches!(
            v,
            "true" | "false" | "1" | "0" | "t" | "f" | "TRUE" | "FALSE" | "True" | "False"
        )
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("malformed parameter {name}: {v:?} is not a boolean"),
        );
    }
    // OTLP has no place for a warning: a trace over the cap comes back as its first spans.
    let max = state.args.limits.query_max_trace_spans;
    match crate::traces::load_spans_capped(&state.ch(), &id, max).await {
        Ok((rows, _)) if rows.is_empty() => error(StatusCode::NOT_FOUND, "No traces found"),
        Ok((rows, _)) => ok(TracesResult {
            result: otlp::traces_data(&rows),
        }),
        Err(e) => storage_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MIN: &str = "2026-01-01T00:00:00Z";
    const MAX: &str = "2026-01-03T00:00:00.5Z";

    #[test]
    fn find_parameters_in_both_spellings_with_jaeger_defaults() {
        let (s, w) = parse_find(
            &q(&[
                ("query.serviceName", "frontend"),
                ("query.startTimeMin", MIN),
                ("query.startTimeMax", MAX),
                ("query.durationMin", "1.5ms"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(s.service.as_deref(), Some("frontend"));
        assert_eq!(s.limit, 100);
        assert_eq!(s.min_duration_ns, Some(1_500_000));
        assert_eq!(w.hi - w.lo, 2 * 86_400_000_000_000 + 500_000_000);
        let (s, _) = parse_find(
            &q(&[
                ("query.service_name", "old"),
                ("query.start_time_min", MIN),
                ("query.start_time_max", MAX),
                ("query.num_traces", "7"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!((s.service.as_deref(), s.limit), (Some("old"), 7));
    }

    #[test]
    fn hostile_find_parameters_are_400s_naming_the_parameter() {
        let base = [("query.startTimeMin", MIN), ("query.startTimeMax", MAX)];
        let with = |extra: (&str, &str)| {
            let mut v = base.to_vec();
            v.push(extra);
            parse_find(&q(&v), 0).unwrap_err()
        };
        assert!(
            parse_find(&q(&[("query.serviceName", "a")]), 0)
                .unwrap_err()
                .contains("required")
        );
        assert!(with(("query.searchDepth", "1501")).contains("1500"));
        assert!(with(("query.searchDepth", "0")).contains("query.searchDepth"));
        assert!(with(("query.durationMin", "5")).contains("query.durationMin"));
        assert!(with(("query.attributes", "{\"a\":1}")).contains("query.attributes"));
        let err = parse_find(
            &q(&[
                ("query.startTimeMin", MIN),
                ("query.startTimeMax", MAX),
                ("query.durationMin", "2s"),
                ("query.durationMax", "1s"),
            ]),
            0,
        )
        .unwrap_err();
        assert!(err.contains("durationMax"), "{err}");
        let err = parse_find(
            &q(&[("query.startTimeMin", MAX), ("query.startTimeMax", MIN)]),
            0,
        )
        .unwrap_err();
        assert!(err.contains("before"), "{err}");
        let err = parse_find(
            &q(&[
                ("query.startTimeMin", "yesterday"),
                ("query.startTimeMax", MAX),
            ]),
            0,
        )
        .unwrap_err();
        assert!(err.contains("query.startTimeMin"), "{err}");
    }

    #[test]
    fn long_windows_are_served() {
        let (_, w) = parse_find(
            &q(&[
                ("query.startTimeMin", "2025-01-01T00:00:00Z"),
                ("query.startTimeMax", "2026-01-01T00:00:00Z"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(w.hi - w.lo, 365 * 86_400_000_000_000);
    }
}
