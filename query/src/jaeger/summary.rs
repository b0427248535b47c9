//! Whole-trace summaries for Jaeger's `/api/v3/trace-summaries` (and the v1 search table):
//! root service and operation, first start, last end, span/error/orphan counts and per-service
//! counts, over every stored span of each trace — not only the spans inside the search window,
//! so a long trace's root and duration are right (Jaeger summarises whole traces too).
//!
//! Two aggregate queries over `TraceId IN (…)` (the TraceId bloom filter, like trace by id);
//! nothing per span crosses the wire, so a 50,000-span trace costs one row per service.

use std::collections::HashMap;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

#[derive(Row, Deserialize, Debug)]
struct PerService {
    trace_id: String,
    service: String,
    spans: u64,
    errors: u64,
    start_ns: i64,
    end_ns: i64,
    roots: u64,
    root_operation: String,
    root_start_ns: i64,
}

#[derive(Row, Deserialize, Debug)]
struct Orphans {
    trace_id: String,
    orphans: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    pub name: String,
    pub span_count: u64,
    pub error_span_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_operation: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub span_count: u64,
    pub error_span_count: u64,
    pub orphan_span_count: u64,
    pub services: Vec<ServiceSummary>,
}

/// Jaeger's `TraceSummary` in proto3 JSON (int64 as decimal strings). Fields in alphabetical
/// order of their JSON names: the order of the `serde_json::Value` body this replaced (pinned
/// in `wire_tests.rs`).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummaryJson<'a> {
    error_span_count: u64,
    max_end_time_unix_nano: String,
    min_start_time_unix_nano: String,
    orphan_span_count: u64,
    root_operation_name: &'a str,
    root_service_name: &'a str,
    services: Vec<ServiceSummaryJson<'a>>,
    span_count: u64,
    trace_id: &'a str,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummaryJson<'a> {
    error_span_count: u64,
    name: &'a str,
    span_count: u64,
}

impl TraceSummary {
    pub fn to_json(&self) -> TraceSummaryJson<'_> {
        TraceSummaryJson {
            error_span_count: self.error_span_count,
            max_end_time_unix_nano: self.end_ns.max(0).to_string(),
            min_start_time_unix_nano: self.start_ns.max(0).to_string(),
            orphan_span_count: self.orphan_span_count,
            root_operation_name: &self.root_operation,
            root_service_name: &self.root_service,
            services: self
                .services
                .iter()
                .map(|s| ServiceSummaryJson {
                    error_span_count: s.error_span_count,
                    name: &s.name,
                    span_count: s.span_count,
                })
                .collect(),
            span_count: self.span_count,
            trace_id: &self.trace_id,
        }
    }
}

/// Summaries of the given traces, in the given order; ids with no stored span are left out.
/// The root is the earliest span without a parent (Jaeger's rule); a span whose parent id is
/// not stored in the trace is an orphan.
pub async fn summaries(client: &Client, ids: &[String]) -> Result<Vec<TraceSummary>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Jaeger counts a span as an error by its status alone.
    let sql = format!(
        "SELECT TraceId AS trace_id, toString(ServiceName) AS service, count() AS spans,
    countIf({}) AS errors,
    toInt64(min(toUnixTimestamp64Nano(Timestamp))) AS start_ns,
    toInt64(max(toUnixTimestamp64Nano(Timestamp) + Duration)) AS end_ns,
    countIf(ParentSpanId = '') AS roots,
    toString(argMinIf(SpanName, Timestamp, ParentSpanId = '')) AS root_operation,
    toInt64(minIf(toUnixTimestamp64Nano(Timestamp), ParentSpanId = '')) AS root_start_ns
FROM otel_traces
PREWHERE TraceId IN {{ids:Array(String)}}
GROUP BY TraceId, ServiceName",
        orrery_store::graph_rules::IS_ERROR_STATUS
    );
    let rows: Vec<PerService> = client
        .query(&sql)
        .param("ids", ids)
        .fetch_all()
        .await
        .context("summarising traces")?;
    let orphans: Vec<Orphans> = client
        .query(
            "SELECT TraceId AS trace_id, count() AS orphans FROM otel_traces
PREWHERE TraceId IN {ids:Array(String)}
WHERE ParentSpanId != ''
  AND (TraceId, ParentSpanId) NOT IN (SELECT TraceId, SpanId FROM otel_traces PREWHERE TraceId IN {ids:Array(String)})
GROUP BY TraceId",
        )
        .param("ids", ids)
        .fetch_all()
        .await
        .context("counting orphan spans")?;
    let orphans: HashMap<&str, u64> = orphans
        .iter()
        .map(|o| (o.trace_id.as_str(), o.orphans))
        .collect();
    let mut by_trace: HashMap<&str, Vec<&PerService>> = HashMap::new();
    for r in &rows {
        by_trace.entry(r.trace_id.as_str()).or_default().push(r);
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(parts) = by_trace.get(id.as_str()) else {
            continue;
        };
        let root = parts
            .iter()
            .filter(|p| p.roots > 0)
            .min_by_key(|p| (p.root_start_ns, p.service.as_str()));
        let mut services: Vec<ServiceSummary> = parts
            .iter()
            .map(|p| ServiceSummary {
                name: p.service.clone(),
                span_count: p.spans,
                error_span_count: p.errors,
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(TraceSummary {
            trace_id: id.clone(),
            root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
            root_operation: root.map(|r| r.root_operation.clone()).unwrap_or_default(),
            start_ns: parts.iter().map(|p| p.start_ns).min().unwrap_or(0),
            end_ns: parts.iter().map(|p| p.end_ns).max().unwrap_or(0),
            span_count: parts.iter().map(|p| p.spans).sum(),
            error_span_count: parts.iter().map(|p| p.errors).sum(),
            orphan_span_count: orphans.get(id.as_str()).copied().unwrap_or(0),
            services,
        });
    }
    Ok(out)
}
