//! What the rollup tests over long windows share (tests/query_backfill.rs and
//! tests/query_month.rs): a database that keeps spans forever, a month of generated traffic
//! whose exact graph is known, a query service whose minute rollup looks only 6 hours back,
//! and exact reads of a window's edges and nodes to compare the rollup levels with.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orrery_query::graph::fetch::{self, EdgeFilter, Grouping, NodeKey, Rolled, Window};
use orrery_query::rollup::Rollup;
use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::ClickHouseArgs;
use orrery_store::latency::Histogram;
use orrery_store::schema::{self, SchemaParams};
use orrery_store::testing::TestServer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::query_support::*;

pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
pub const DAYS: i64 = 33;
pub const HORIZON: Duration = Duration::from_secs(6 * 3600);

/// A fresh database that keeps spans forever (the default test retention of 7 days would let
/// ClickHouse's TTL drop the backdated spans).
pub async fn database() -> ClickHouseArgs {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = TestServer::shared();
    let mut args = ClickHouseArgs::for_url(
        &server.url,
        format!(
            "backfill_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
    );
    args.retention_days = 0;
    let params = SchemaParams::from_args(&args).unwrap();
    schema::migrate(&args.server_client(&server.url), &params)
        .await
        .unwrap();
    args
}

pub fn floor_hour(ns: i64) -> i64 {
    ns.div_euclid(HOUR) * HOUR
}

/// Two traces an hour for `DAYS` days up to two hours ago, each `frontend` (entry) ->
/// `checkout` -> an uninstrumented database, every fifth failing; plus one trace an hour whose
/// call crosses into the next hour (parent at :59:59.990, child 10 ms later), so a call's
/// halves fall into hours the backfill computes in different steps.
pub fn month(end: i64) -> (Vec<orrery_store::SpanRow>, u64) {
    let first = end - DAYS * DAY;
    let mut rows = Vec::new();
    let mut traces = 0;
    let mut h = first;
    while h < end {
        let n = (h - first) / HOUR;
        for i in 0..3 {
            let t = format!("t{n}x{i}");
            let ts = if i == 2 {
                h + HOUR - 10 * MS
            } else {
                h + ((n * 7 + i * 23) % 60) * MINUTE + i * 1000 * MS
            };
            let dur = 1 + (n * 13 + i * 101) % 700;
            rows.push(span(&t, "1", "", "frontend", "Server", ts, dur + 20));
            rows.push(span(
                &t,
                "2",
                "1",
                "frontend",
                "Client",
                ts + 5 * MS,
                dur + 10,
            ));
            let mut server = span(&t, "3", "2", "checkout", "Server", ts + 10 * MS, dur);
            if (n + i) % 5 == 0 {
                server = server.error();
            }
            rows.push(server);
            rows.push(
                span(&t, "4", "3", "checkout", "Client", ts + 11 * MS, 1)
                    .attr("db.system.name", "postgresql"),
            );
            traces += 1;
        }
        h += HOUR;
    }
    (rows, traces)
}

/// The UTC days (Unix s) wholly inside `[lo, today - DAY)`: up to the day before yesterday
/// (yesterday's last hour waits for today's first to be whole).
pub fn whole_days(lo: i64, today: i64) -> Vec<u32> {
    ((lo + DAY - 1).div_euclid(DAY) * DAY..today - DAY)
        .step_by(DAY as usize)
        .map(|d| (d / 1_000_000_000) as u32)
        .collect()
}

/// `month(end)`'s rows from `from` on (cut between traces when `from` is half past an hour).
pub fn month_since(end: i64, from: i64) -> Vec<orrery_store::SpanRow> {
    let (mut rows, _) = month(end);
    rows.retain(|r| r.timestamp >= from);
    rows
}

pub struct Server {
    pub base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

pub fn args() -> GraphArgs {
    GraphArgs {
        graph_rollup_backfill: HORIZON,
        graph_rollup_interval: Duration::from_secs(1),
        ..settings()
    }
}

pub async fn start(ch: &ClickHouseArgs) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let q = QueryArgs {
        query_addr: addr,
        api_token: None,
        ui_dir: std::env::temp_dir(),
        graph: args(),
        limits: Default::default(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(orrery_query::serve(
        listener,
        q,
        ch.clone(),
        shutdown.clone(),
    ));
    Server {
        base: format!("http://{addr}"),
        shutdown,
        task,
    }
}

pub async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Hours (Unix s) older than the horizon with an hour marker, and how many markers each has.
pub async fn hour_markers(ch: &ClickHouseArgs, horizon: i64) -> BTreeMap<u32, u64> {
    ch.client()
        .query(
            "SELECT toUInt32(Hour) AS h, count() AS n FROM orrery_graph_hours
             WHERE Hour < toDateTime(fromUnixTimestamp64Nano({hi:Int64})) GROUP BY Hour",
        )
        .param("hi", horizon)
        .fetch_all::<(u32, u64)>()
        .await
        .unwrap()
        .into_iter()
        .collect()
}

pub fn edge_requests(g: &Value, source: &str, target: &str) -> u64 {
    g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == source && e["target"] == target)
        .map_or(0, |e| e["metrics"]["requests"].as_u64().unwrap())
}

pub type EdgeKey = (String, String, String, u64, u64, u64);
/// (source, target, requests, errors)
pub type EdgeCount = (String, String, u64, u64);
/// Calls served per service.
pub type Served = BTreeMap<String, u64>;
pub type Parts = (
    Vec<(EdgeKey, Histogram)>,
    Vec<(String, u64, u64, u64, Histogram)>,
);

/// Edges and nodes of `w`, exactly (counts, duration sums, histograms), read as the graph
/// reads them (`rolled`) — or, with no markers and no budget, joined from raw spans.
pub async fn exact_parts(ch: &ClickHouseArgs, w: Window, rolled: &Rolled) -> Parts {
    let (client, s) = (ch.client(), args());
    let cache = Default::default();
    let edges = fetch::edges_in(
        &client,
        &s,
        &cache,
        w,
        rolled,
        Grouping::Services,
        &EdgeFilter::None,
    )
    .await
    .unwrap();
    let nodes = fetch::nodes_in(&client, &s, &cache, w, rolled, &NodeKey::Services)
        .await
        .unwrap();
    (
        edges
            .iter()
            .map(|e| {
                let k = (
                    e.source.clone(),
                    e.target.clone(),
                    e.kind.clone(),
                    e.requests,
                    e.errors,
                    e.duration_sum_ns,
                );
                (k, e.latency.clone())
            })
            .collect(),
        nodes
            .iter()
            .map(|n| {
                let k = (n.id.clone(), n.requests, n.errors, n.duration_sum_ns);
                (k.0, k.1, k.2, k.3, n.latency.clone())
            })
            .collect(),
    )
}

/// The edges (source, target, requests, errors) and served calls per service the generated
/// `rows` make in `[lo, hi)`, counted here from the rows themselves (a call belongs to its
/// callee span's minute): what the graph of that window must say, exactly.
pub fn expected_calls(
    rows: &[orrery_store::SpanRow],
    lo: i64,
    hi: i64,
) -> (Vec<EdgeCount>, Served) {
    let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut served: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.timestamp >= lo && r.timestamp < hi)
    {
        let err = u64::from(r.status_code == "Error");
        let key = match (r.service_name.as_str(), r.span_kind.as_str()) {
            ("frontend", "Server") => ("INTERNET", "frontend"),
            ("checkout", "Server") => ("frontend", "checkout"),
            ("checkout", "Client") => ("checkout", "database:postgresql"),
            _ => continue,
        };
        if r.span_kind == "Server" {
            *served.entry(r.service_name.clone()).or_default() += 1;
        }
        let e = edges.entry((key.0.into(), key.1.into())).or_default();
        e.0 += 1;
        e.1 += err;
    }
    let edges = edges
        .into_iter()
        .map(|((a, b), (n, err))| (a, b, n, err))
        .collect();
    (edges, served)
}

/// Backfills every pending hour now, newest first, in steps of six (what `run_backfill` does,
/// without its pauses); returns the hours it was given.
pub async fn backfill_all(job: &Rollup) -> Vec<i64> {
    let plan = job.backfill_plan(now_ns()).await.unwrap();
    let pending: Vec<i64> = plan.pending.iter().map(|p| p.0).collect();
    for group in pending.chunks(6) {
        job.backfill_step(group, now_ns()).await.unwrap();
    }
    pending
}

/// The rows a graph shows when it leaves out the `(lo, hi)` ranges its data quality names.
pub fn outside(
    rows: &[orrery_store::SpanRow],
    left_out: &[(i64, i64)],
) -> Vec<orrery_store::SpanRow> {
    rows.iter()
        .filter(|r| {
            !left_out
                .iter()
                .any(|&(a, b)| a <= r.timestamp && r.timestamp < b)
        })
        .cloned()
        .collect()
}

pub fn edge_counts(parts: &Parts) -> Vec<(String, String, u64, u64)> {
    let mut v: Vec<_> = parts
        .0
        .iter()
        .map(|(k, _)| (k.0.clone(), k.1.clone(), k.3, k.4))
        .collect();
    v.sort();
    v
}

pub fn served_counts(parts: &Parts) -> BTreeMap<String, u64> {
    parts.1.iter().map(|n| (n.0.clone(), n.1)).collect()
}

/// `parts` with rows in key order (ClickHouse returns groups in any order).
pub fn sorted(mut parts: Parts) -> Parts {
    parts.0.sort_by(|a, b| a.0.cmp(&b.0));
    parts
        .1
        .sort_by(|a, b| (&a.0, a.1, a.2, a.3).cmp(&(&b.0, b.1, b.2, b.3)));
    parts
}

/// Rows of the minute rollups older than `before` deleted, as schema v14's TTL drops them.
pub async fn drop_minutes(ch: &ClickHouseArgs, before: i64) {
    for t in [
        "orrery_graph_minutes",
        "orrery_graph_edges_1m",
        "orrery_graph_nodes_1m",
    ] {
        ch.client()
            .query(&format!(
                "ALTER TABLE {t} DELETE WHERE Minute < toDateTime(fromUnixTimestamp64Nano({{b:Int64}}))
                 SETTINGS mutations_sync = 2"
            ))
            .param("b", before)
            .execute()
            .await
            .unwrap();
    }
}

/// Asserts the edges and served calls of `parts` are exactly what the generated `rows` make in
/// `w`; returns the expected edges.
pub fn assert_calls(parts: &Parts, rows: &[orrery_store::SpanRow], w: Window) -> Vec<EdgeCount> {
    let (want_edges, want_served) = expected_calls(rows, w.lo, w.hi);
    assert_eq!(edge_counts(parts), want_edges);
    assert_eq!(served_counts(parts), want_served);
    want_edges
}

/// Stores `rows`, rolls up the last 8 hours' minutes and backfills every older hour; the
/// rollup job, to go on with.
pub async fn rolled_up(ch: &ClickHouseArgs, rows: &[orrery_store::SpanRow]) -> Rollup {
    insert(ch, rows).await;
    let job = Rollup::new(ch.client(), args());
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();
    backfill_all(&job).await;
    job
}
