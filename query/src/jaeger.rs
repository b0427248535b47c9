//! Jaeger-compatible HTTP APIs on the query port, so the Jaeger UI and Grafana's Jaeger data
//! source work against Orrery unchanged: v1 (`/api/…`, Jaeger's UI JSON model; `v1`,
//! `v1_model`) and v3 (`/api/v3/…`, OTLP JSON; `v3`, `otlp`), sharing the tag-aware search
//! (`search`), whole-trace summaries (`summary`) and Jaeger's parameter formats (`params`).
//! The compatibility table is docs/compatibility.md.

pub mod otlp;
pub mod params;
pub mod search;
pub mod summary;
pub mod v1;
pub mod v1_model;
pub mod v3;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clickhouse::Client;
use orrery_store::SpanRow;

// The service/operation lookups are shared with the Orrery API; they live in `catalog`.
pub use crate::catalog::{catalog_window, operations, services};

#[cfg(test)]
mod wire_tests;

pub use v1::parse_search;
pub use v1_model::trace_json;

/// Most traces one search may return (`limit`, `query.searchDepth`); beyond is a 400.
pub const MAX_SEARCH_TRACES: i64 = 1500;
/// Most `traceID` parameters in one v1 search.
pub const MAX_TRACE_IDS: usize = 100;

/// The window the service and operation lists cover: everything stored (retention bounds
/// it), as Jaeger lists every service its storage holds. A day ahead covers senders whose
/// clocks run fast.
/// A storage failure that was one of the query limits, in the caller's error envelope with the
/// Orrery API's status and `Retry-After` (`ApiError::limit_hit`); `None` for any other failure.
fn limited_response(
    err: &anyhow::Error,
    envelope: impl FnOnce(axum::http::StatusCode, String) -> axum::response::Response,
) -> Option<axum::response::Response> {
    let limited = crate::error::ApiError::limit_hit(err)?;
    let mut response = envelope(limited.status, limited.message);
    if let Some(seconds) = limited.retry_after {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
    }
    Some(response)
}

/// `limit` / `query.searchDepth` checked against [`MAX_SEARCH_TRACES`].
pub fn check_limit(name: &str, n: i64) -> Result<usize, String> {
    if !(1..=MAX_SEARCH_TRACES).contains(&n) {
        return Err(format!(
            "{name}: {n} is not between 1 and {MAX_SEARCH_TRACES}; ask for fewer traces"
        ));
    }
    Ok(n as usize)
}

pub enum LoadError {
    TooMany(String),
    Storage(anyhow::Error),
}

/// Every stored span of the given traces (the whole traces, whatever the search window was),
/// at most `max` (`--query-max-trace-spans`: what one answer may hold in memory).
pub async fn load_whole_traces(
    client: &Client,
    ids: &[String],
    max: u64,
) -> Result<Vec<SpanRow>, LoadError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<SpanRow> = client
        .query(&format!(
            "SELECT {} FROM otel_traces PREWHERE TraceId IN {{ids:Array(String)}} LIMIT {{max:UInt64}}",
            orrery_store::schema::span_select()
        ))
        .param("ids", ids)
        .param("max", max.saturating_add(1))
        .fetch_all()
        .await
        .context("loading traces")
        .map_err(LoadError::Storage)?;
    if rows.len() as u64 > max {
        return Err(LoadError::TooMany(format!(
            "the {} traces found hold more than {max} spans (--query-max-trace-spans); ask for \
             fewer traces (limit / query.searchDepth) or narrow the search",
            ids.len()
        )));
    }
    Ok(rows)
}

/// Spans grouped by trace id.
pub fn by_trace(rows: Vec<SpanRow>) -> BTreeMap<String, Vec<SpanRow>> {
    let mut out: BTreeMap<String, Vec<SpanRow>> = BTreeMap::new();
    for r in rows {
        out.entry(r.trace_id.clone()).or_default().push(r);
    }
    out
}
