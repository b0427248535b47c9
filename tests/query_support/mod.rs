//! Shared helpers for the query service's integration tests: span builders and inserts into
//! a fresh database on the real embedded engine.
#![allow(dead_code)]

use std::time::Duration;

use orrery_query::GraphArgs;
use orrery_query::graph::{self, GraphRequest, Level};
use orrery_query::model::Graph;
use orrery_query::rollup::Rollup;
use orrery_store::{ClickHouseArgs, SpanRow};

pub const MS: i64 = 1_000_000;
pub const MINUTE: i64 = 60_000 * MS;

pub fn now_ns() -> i64 {
    orrery_query::now_ns()
}

/// A span; `ts` in ns, `dur_ms` in milliseconds.
pub fn span(
    trace: &str,
    id: &str,
    parent: &str,
    service: &str,
    kind: &str,
    ts: i64,
    dur_ms: i64,
) -> SpanRow {
    SpanRow {
        timestamp: ts,
        trace_id: format!("{trace:0>32}"),
        span_id: format!("{id:0>16}"),
        parent_span_id: if parent.is_empty() {
            String::new()
        } else {
            format!("{parent:0>16}")
        },
        span_name: format!("{service} {kind}"),
        span_kind: kind.to_string(),
        service_name: service.to_string(),
        resource_attributes: vec![("service.name".into(), service.into())],
        duration: (dur_ms * MS) as u64,
        status_code: "Unset".into(),
        ..Default::default()
    }
}

pub trait SpanExt {
    fn attr(self, k: &str, v: &str) -> Self;
    fn resource(self, k: &str, v: &str) -> Self;
    fn error(self) -> Self;
    fn name(self, n: &str) -> Self;
}

impl SpanExt for SpanRow {
    fn attr(mut self, k: &str, v: &str) -> Self {
        self.span_attributes.push((k.into(), v.into()));
        self
    }
    fn resource(mut self, k: &str, v: &str) -> Self {
        self.resource_attributes.push((k.into(), v.into()));
        self
    }
    fn error(mut self) -> Self {
        self.status_code = "Error".into();
        self
    }
    fn name(mut self, n: &str) -> Self {
        self.span_name = n.into();
        self
    }
}

/// One insert (one "batch", as one collector would send it).
pub async fn insert(ch: &ClickHouseArgs, rows: &[SpanRow]) {
    let client = ch.client();
    let mut insert = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in rows {
        insert.write(r).await.unwrap();
    }
    insert.end().await.unwrap();
}

/// Settings for tests: short grace so freshly inserted spans settle quickly.
pub fn settings() -> GraphArgs {
    GraphArgs {
        graph_grace: Duration::from_millis(1),
        graph_rollup_delay: Duration::from_secs(0),
        ..GraphArgs::default()
    }
}

pub fn window(lo: i64, hi: i64) -> graph::Span {
    orrery_query::params::span(lo, hi, now_ns()).unwrap()
}

pub async fn graph_of(ch: &ClickHouseArgs, level: Level, w: graph::Span) -> Graph {
    graph_with(ch, &settings(), &Default::default(), level, w).await
}

/// The graph with given settings and cache of rolled-up parts (shared across calls).
pub async fn graph_with(
    ch: &ClickHouseArgs,
    s: &GraphArgs,
    cache: &graph::cache::RolledCache,
    level: Level,
    w: graph::Span,
) -> Graph {
    let req = GraphRequest {
        level,
        region: None,
        focus: None,
        window: w,
        whats_wrong: true,
        group: Default::default(),
    };
    graph::graph(&ch.client(), s, cache, &req).await.unwrap()
}

pub async fn rollup(ch: &ClickHouseArgs, lookback: Duration) -> orrery_query::rollup::RunReport {
    Rollup::new(ch.client(), settings())
        .run_once(now_ns(), lookback)
        .await
        .unwrap()
}

/// (source, target, requests, errors) of every edge, sorted.
pub fn edge_table(g: &Graph) -> Vec<(String, String, u64, u64)> {
    let mut v: Vec<_> = g
        .edges
        .iter()
        .map(|e| {
            (
                e.source.clone(),
                e.target.clone(),
                e.metrics.requests,
                e.metrics.errors,
            )
        })
        .collect();
    v.sort();
    v
}

pub fn e(a: &str, b: &str, n: u64, err: u64) -> (String, String, u64, u64) {
    (a.into(), b.into(), n, err)
}
