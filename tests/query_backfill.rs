//! The hourly backfill over the whole retention (issue 14 item 3), on the real embedded engine:
//! 33 days of spans stored before the query service ever ran, a query service whose minute
//! rollup only looks 6 hours back. The backfill must fill the old hours newest first, a
//! 30-day graph must then equal the one joined from raw spans exactly, data quality must say
//! what is left out while it runs, a restart must carry on without recomputing (or doubling)
//! what is done, a late span into a backfilled hour must be in the very next read, and windows
//! longer than the old 31-day cap must be answered (bounded, and refused past 3650 days).

mod query_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orrery_query::graph::Level;
use orrery_query::graph::fetch::{self, EdgeFilter, Grouping, NodeKey, Rolled, Window};
use orrery_query::rollup::Rollup;
use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::ClickHouseArgs;
use orrery_store::latency::Histogram;
use orrery_store::schema::{self, SchemaParams};
use orrery_store::testing::TestServer;
use query_support::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const DAYS: i64 = 33;
const HORIZON: Duration = Duration::from_secs(6 * 3600);

/// A fresh database that keeps spans forever (the default test retention of 7 days would let
/// ClickHouse's TTL drop the backdated spans).
async fn database() -> ClickHouseArgs {
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

fn floor_hour(ns: i64) -> i64 {
    ns.div_euclid(HOUR) * HOUR
}

/// Two traces an hour for `DAYS` days up to two hours ago, each `frontend` (entry) ->
/// `checkout` -> an uninstrumented database, every fifth failing; plus one trace an hour whose
/// call crosses into the next hour (parent at :59:59.990, child 10 ms later), so a call's
/// halves fall into hours the backfill computes in different steps.
fn month(end: i64) -> (Vec<orrery_store::SpanRow>, u64) {
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

struct Server {
    base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

fn args() -> GraphArgs {
    GraphArgs {
        graph_rollup_backfill: HORIZON,
        graph_rollup_interval: Duration::from_secs(1),
        ..settings()
    }
}

async fn start(ch: &ClickHouseArgs) -> Server {
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

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Hours (Unix s) older than the horizon with an hour marker, and how many markers each has.
async fn hour_markers(ch: &ClickHouseArgs, horizon: i64) -> BTreeMap<u32, u64> {
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

fn edge_requests(g: &Value, source: &str, target: &str) -> u64 {
    g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == source && e["target"] == target)
        .map_or(0, |e| e["metrics"]["requests"].as_u64().unwrap())
}

type EdgeKey = (String, String, String, u64, u64, u64);
/// (source, target, requests, errors)
type EdgeCount = (String, String, u64, u64);
/// Calls served per service.
type Served = BTreeMap<String, u64>;
type Parts = (
    Vec<(EdgeKey, Histogram)>,
    Vec<(String, u64, u64, u64, Histogram)>,
);

/// Edges and nodes of `w`, exactly (counts, duration sums, histograms), read as the graph
/// reads them (`rolled`) — or, with no markers and no budget, joined from raw spans.
async fn exact_parts(ch: &ClickHouseArgs, w: Window, rolled: &Rolled) -> Parts {
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
fn expected_calls(rows: &[orrery_store::SpanRow], lo: i64, hi: i64) -> (Vec<EdgeCount>, Served) {
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
async fn backfill_all(job: &Rollup) -> Vec<i64> {
    let plan = job.backfill_plan(now_ns()).await.unwrap();
    let pending: Vec<i64> = plan.pending.iter().map(|p| p.0).collect();
    for group in pending.chunks(6) {
        job.backfill_step(group, now_ns()).await.unwrap();
    }
    pending
}

/// The rows a graph shows when it leaves out the `(lo, hi)` ranges its data quality names.
fn outside(rows: &[orrery_store::SpanRow], left_out: &[(i64, i64)]) -> Vec<orrery_store::SpanRow> {
    rows.iter()
        .filter(|r| {
            !left_out
                .iter()
                .any(|&(a, b)| a <= r.timestamp && r.timestamp < b)
        })
        .cloned()
        .collect()
}

fn edge_counts(parts: &Parts) -> Vec<(String, String, u64, u64)> {
    let mut v: Vec<_> = parts
        .0
        .iter()
        .map(|(k, _)| (k.0.clone(), k.1.clone(), k.3, k.4))
        .collect();
    v.sort();
    v
}

fn served_counts(parts: &Parts) -> BTreeMap<String, u64> {
    parts.1.iter().map(|n| (n.0.clone(), n.1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_hours_fill_newest_first_and_a_month_long_graph_is_exact() {
    let ch = database().await;
    let now = now_ns();
    let end = floor_hour(now) - 2 * HOUR;
    let (rows, traces) = month(end);
    insert(&ch, &rows).await;
    // The whole hours before the minute rollup's horizon are the backfill's.
    let horizon = floor_hour(now - HORIZON.as_nanos() as i64);
    let first = end - DAYS * DAY;
    let expected: BTreeSet<u32> = (first..horizon)
        .step_by(HOUR as usize)
        .map(|h| (h / 1_000_000_000) as u32)
        .collect();

    // What the backfill found to do, before anything ran: every old hour.
    let plan = Rollup::new(ch.client(), args())
        .backfill_plan(now_ns())
        .await
        .unwrap();
    assert_eq!(plan.total, expected.len());
    assert_eq!(plan.pending.len(), expected.len());
    assert!(
        plan.pending.windows(2).all(|p| p[0].0 > p[1].0),
        "newest first"
    );

    let s = start(&ch).await;
    let month_url = format!("{}/orrery/api/graph?since=30d", s.base);
    // Watch it: the hours done are always the newest ones, with no hole; the 30-day graph
    // says how much it leaves out.
    let mut partial_seen = None;
    let started = Instant::now();
    let done_before_restart = loop {
        let done = hour_markers(&ch, horizon).await;
        let oldest_done = done.keys().next().copied();
        if let Some(oldest) = oldest_done {
            let newest_missing = expected.iter().rev().find(|h| !done.contains_key(h));
            assert!(
                newest_missing.is_none_or(|m| *m < oldest),
                "an older hour was rolled up before a newer one: {newest_missing:?} missing, {oldest} done"
            );
        }
        if partial_seen.is_none() && !done.is_empty() {
            let (st, g) = get(&month_url).await;
            assert_eq!(st, 200, "{g}");
            let dq = &g["data_quality"];
            let share = dq["rollup_coverage"].as_f64().unwrap();
            if share > 0.0 && share < 1.0 {
                let uncovered = dq["uncovered"].as_array().unwrap();
                assert!(!uncovered.is_empty(), "{dq}");
                // What is left out is the oldest part of the window, and the answer counts no
                // more than what exists.
                let start_ms = uncovered[0]["start_ms"].as_i64().unwrap();
                assert!(start_ms < oldest_done.unwrap() as i64 * 1000, "{dq}");
                assert!(edge_requests(&g, "INTERNET", "frontend") < traces, "{dq}");
                partial_seen = Some(share);
            }
        }
        if done.len() * 3 >= expected.len() && partial_seen.is_some() {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "backfill too slow: {} of {} hours",
            done.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        partial_seen.is_some(),
        "data quality never reported partial coverage"
    );
    assert!(
        done_before_restart.len() < expected.len(),
        "restart too late"
    );

    // Restart mid-backfill: it carries on from what ClickHouse holds.
    s.stop().await;
    let done_at_stop = hour_markers(&ch, horizon).await;
    let s = start(&ch).await;
    loop {
        let done = hour_markers(&ch, horizon).await;
        if done.len() == expected.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "backfill too slow after the restart: {} of {} hours",
            done.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = hour_markers(&ch, horizon).await;
    assert_eq!(done.keys().copied().collect::<BTreeSet<_>>(), expected);
    for (h, n) in &done_at_stop {
        assert_eq!(
            done[h], *n,
            "hour {h}, done before the restart, was computed again"
        );
    }

    // A month-long window from hourly rollups equals the one joined from raw spans.
    let w = window(floor_hour(now) - 30 * DAY, floor_hour(now) - HOUR);
    let rolled = Rolled::read(&ch.client(), w.lo, w.hi).await.unwrap();
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty(), "{:?}", c.uncovered);
    assert!(
        c.hours.len() >= 29 * 24,
        "{} hours from hourly rows",
        c.hours.len()
    );
    assert!(c.live.is_empty(), "nothing read from spans: {:?}", c.live);
    // (The call copy keeps ~2 days: the raw join of a month is counted from the rows here.)
    let from_rollups = exact_parts(&ch, w, &rolled).await;
    let (want_edges, want_served) = expected_calls(&rows, w.lo, w.hi);
    assert_eq!(edge_counts(&from_rollups), want_edges);
    assert_eq!(served_counts(&from_rollups), want_served);
    let entries = want_edges
        .iter()
        .find(|e| e.0 == "INTERNET" && e.1 == "frontend")
        .map(|e| e.2)
        .unwrap();
    // Three traces an hour, but the window's first hour starts 30 days before the hour now.
    assert!(entries >= 3 * 24 * 29, "{entries}");

    // The API agrees, fully covered; and a window longer than the old 31-day cap is answered.
    let (st, g) = get(&format!(
        "{}/orrery/api/graph?start={}&end={}",
        s.base,
        w.lo / 1_000_000,
        w.hi / 1_000_000
    ))
    .await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["data_quality"]["rollup_coverage"], 1.0, "{g}");
    assert!(g["data_quality"].get("uncovered").is_none(), "{g}");
    assert_eq!(edge_requests(&g, "INTERNET", "frontend"), entries);
    let (st, g) = get(&format!("{}/orrery/api/graph?since=40d", s.base)).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(edge_requests(&g, "INTERNET", "frontend"), traces);
    assert_eq!(edge_requests(&g, "checkout", "database:postgresql"), traces);
    assert_eq!(g["data_quality"]["rollup_coverage"], 1.0, "{g}");
    // Longer than the retention (forever here) but bounded: ten years is the most.
    let (st, g) = get(&format!("{}/orrery/api/graph?since=3000d", s.base)).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(edge_requests(&g, "INTERNET", "frontend"), traces);
    let (st, g) = get(&format!("{}/orrery/api/graph?since=3651d", s.base)).await;
    assert_eq!(st, 400, "{g}");
    assert!(g.to_string().contains("3650 days"), "{g}");
    // The gauges say it is done (set right after the last step's markers are written).
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = reqwest::get(format!("{}/metrics", s.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("orrery_query_rollup_backfill_hours_pending 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("orrery_query_rollup_backfill_hours_pending 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orrery_query_rollup_backfill_hours_total"),
        "{metrics}"
    );
    // The day rollup runs once per backfill pass: the closed days whose hours are all rolled
    // up are merged (the first, partial day waits: its hours before the first span are not).
    let days_done = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("orrery_query_rollup_days_done "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    for _ in 0..200 {
        if days_done(&metrics) >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = reqwest::get(format!("{}/metrics", s.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    assert!(days_done(&metrics) >= 30, "{metrics}");
    assert!(
        metrics.contains("orrery_query_rollup_days_pending 0"),
        "{metrics}"
    );

    // A late trace backdated into a backfilled hour 20 days ago, into a minute that already
    // held spans (the first trace of that hour).
    let old_hour = floor_hour(now) - 20 * DAY;
    let n = (old_hour - first) / HOUR;
    let old = old_hour + ((n * 7) % 60) * MINUTE + 30_000 * MS;
    insert(
        &ch,
        &[
            span("late", "1", "", "frontend", "Server", old, 5),
            span("late", "2", "1", "frontend", "Client", old + MS, 3),
            span("late", "3", "2", "checkout", "Server", old + 2 * MS, 2),
        ],
    )
    .await;
    let (_, g) = get(&format!(
        "{}/orrery/api/graph?start={}&end={}",
        s.base,
        w.lo / 1_000_000,
        w.hi / 1_000_000
    ))
    .await;
    // That hour is older than the call copy (schema v11): its changed minutes (and their
    // neighbours) cannot be read from spans, so they are left out and said to be — never
    // served stale, never counted twice — until the backfill recomputes the hour.
    let dq = &g["data_quality"];
    assert_eq!(dq["late_spans"], 3, "{dq}");
    assert!(dq["rollup_coverage"].as_f64().unwrap() < 1.0, "{dq}");
    let left_out: Vec<(i64, i64)> = dq["uncovered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["start_ms"].as_i64().unwrap() * 1_000_000,
                r["end_ms"].as_i64().unwrap() * 1_000_000,
            )
        })
        .collect();
    assert!(
        left_out.iter().any(|&(a, b)| a <= old && old < b) && left_out.len() == 1,
        "{dq}"
    );
    let late_rows = [
        span("late", "1", "", "frontend", "Server", old, 5),
        span("late", "2", "1", "frontend", "Client", old + MS, 3),
        span("late", "3", "2", "checkout", "Server", old + 2 * MS, 2),
    ];
    let all: Vec<_> = rows.iter().cloned().chain(late_rows).collect();
    let shown = outside(&all, &left_out);
    let (want_shown, _) = expected_calls(&shown, w.lo, w.hi);
    let want = want_shown
        .iter()
        .find(|e| e.0 == "INTERNET" && e.1 == "frontend")
        .map_or(0, |e| e.2);
    assert_eq!(edge_requests(&g, "INTERNET", "frontend"), want);
    assert!(want < entries, "{want} {entries}");
    s.stop().await;
    // The next pass recomputes that hour and the hours either side (older than a day, an
    // hour is judged by its marker's span count and its neighbours': schema v14), nothing else.
    let job = Rollup::new(ch.client(), args());
    let plan = job.backfill_plan(now_ns()).await.unwrap();
    let pending: Vec<i64> = plan.pending.iter().map(|p| p.0).collect();
    assert_eq!(
        pending,
        vec![old_hour + HOUR, old_hour, old_hour - HOUR],
        "{pending:?}"
    );
    let (computed, late) = job.backfill_step(&pending, now_ns()).await.unwrap();
    assert_eq!((computed, late), (pending, 3));
    assert!(
        job.backfill_plan(now_ns())
            .await
            .unwrap()
            .pending
            .is_empty()
    );
    let rolled = Rolled::read(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(rolled.coverage(w).live.is_empty());
    let (want_edges, want_served) = expected_calls(&all, w.lo, w.hi);
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_eq!(edge_counts(&parts), want_edges);
    assert_eq!(served_counts(&parts), want_served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_window_nothing_rolled_up_joins_at_most_the_budget_and_says_what_it_left_out() {
    let ch = database().await;
    let now = now_ns();
    let end = floor_hour(now) - 10 * DAY;
    // Ten days of spans, ten to twenty days ago; no rollup has ever run.
    let mut rows = Vec::new();
    let mut h = end - 10 * DAY;
    let mut n = 0;
    while h < end {
        let t = format!("o{n}");
        rows.push(span(&t, "1", "", "frontend", "Server", h + MINUTE, 10));
        h += HOUR;
        n += 1;
    }
    insert(&ch, &rows).await;
    let w = window(end - 10 * DAY, end);
    // Nothing rolled up, and all of it older than the minute rollup's horizon (where the call
    // copy is gone): nothing is read from spans, all of it is reported as left out.
    let g = graph_with(
        &ch,
        &settings(),
        &Default::default(),
        orrery_query::graph::Level::Region,
        w,
    )
    .await;
    assert!(g.edges.is_empty(), "{:?}", g.edges);
    assert_eq!(g.data_quality.spans, n);
    assert_eq!(g.data_quality.rollup_coverage, 0.0);
    assert_eq!(
        g.data_quality
            .uncovered
            .iter()
            .map(|r| (r.start_ms, r.end_ms))
            .collect::<Vec<_>>(),
        vec![(
            (end - 10 * DAY + MINUTE) / 1_000_000,
            (end - HOUR + 2 * MINUTE) / 1_000_000
        )]
    );
    // Once rolled up, the same window is whole.
    let job = Rollup::new(ch.client(), args());
    loop {
        let plan = job.backfill_plan(now_ns()).await.unwrap();
        let Some(&(h, _)) = plan.pending.first() else {
            break;
        };
        let group: Vec<i64> = plan
            .pending
            .iter()
            .map(|p| p.0)
            .take_while(|&x| x > h - 6 * HOUR)
            .collect();
        job.backfill_step(&group, now_ns()).await.unwrap();
    }
    let g = graph_with(
        &ch,
        &settings(),
        &Default::default(),
        orrery_query::graph::Level::Region,
        w,
    )
    .await;
    let entries = g
        .edges
        .iter()
        .find(|e| e.source == "INTERNET")
        .map_or(0, |e| e.metrics.requests);
    assert_eq!(entries, n);
    assert_eq!(g.data_quality.rollup_coverage, 1.0);
    assert!(g.data_quality.uncovered.is_empty());
}

/// A 30-day window read hour by hour must lose nothing to that shortcut: an hour that is
/// rolled up and current is taken whole (one summary, not its 60 minutes), but late spans into
/// such an hour are in the very next read (the same parts cache too) and counted late, and an
/// old stretch no rollup has reached is reported as left out — never summed as if rolled up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_long_window_taken_by_whole_hours_still_sees_late_spans_and_unrolled_hours() {
    let ch = database().await;
    let now = now_ns();
    let trace = |t: &str, ts: i64| {
        [
            span(t, "1", "", "frontend", "Server", ts, 20),
            span(t, "2", "1", "frontend", "Client", ts + MS, 10),
            span(t, "3", "2", "checkout", "Server", ts + 2 * MS, 5),
        ]
    };
    // A trace every 10 minutes for the last 7 hours, and 5 traces 20 days ago that no rollup
    // reaches (the minute rollup only looks 8 hours back; no backfill runs here).
    let mut rows = Vec::new();
    let mut recent = 0;
    let mut ts = floor_hour(now) - 7 * HOUR + 30_000 * MS;
    while ts < now - 10 * MINUTE {
        rows.extend(trace(&format!("r{recent}"), ts));
        recent += 1;
        ts += 10 * MINUTE;
    }
    let old_hour = floor_hour(now) - 20 * DAY;
    for i in 0..5 {
        rows.extend(trace(&format!("o{i}"), old_hour + i * MINUTE));
    }
    insert(&ch, &rows).await;
    let job = Rollup::new(ch.client(), settings());
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();

    let month = || window(now_ns() - 30 * DAY, now_ns());
    let cache = Default::default();
    let entries = |g: &orrery_query::model::Graph| {
        g.edges
            .iter()
            .find(|e| e.source == "INTERNET" && e.target == "frontend")
            .map_or(0, |e| e.metrics.requests)
    };
    // The closed hours are taken whole; only the ragged ends are read minute by minute.
    let late_hour = floor_hour(now) - 3 * HOUR;
    let w = month();
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(
        rolled.summarized.contains_key(&late_hour),
        "{:?}",
        rolled.summarized.keys().collect::<Vec<_>>()
    );
    assert!(rolled.summarized.len() >= 4, "{:?}", rolled.summarized);
    let c = rolled.coverage(w);
    assert!(
        c.hours.contains(&((late_hour / 1_000_000_000) as u32)),
        "{c:?}"
    );
    let g = graph_with(&ch, &settings(), &cache, Level::Region, w).await;
    assert_eq!(entries(&g), recent);
    assert_eq!(g.data_quality.late_spans, 0);
    // The old, unrolled stretch is left out and said to be: its spans are counted in the
    // window, its range is listed, the share is what the answer is made of.
    let dq = &g.data_quality;
    assert_eq!(dq.spans, (recent + 5) * 3, "{dq:?}");
    assert_eq!(
        dq.uncovered
            .iter()
            .map(|r| (r.start_ms, r.end_ms))
            .collect::<Vec<_>>(),
        vec![(old_hour / 1_000_000, (old_hour + 5 * MINUTE) / 1_000_000)],
        "{dq:?}"
    );
    let share = recent as f64 * 3.0 / ((recent + 5) as f64 * 3.0);
    assert!((dq.rollup_coverage - share).abs() < 1e-9, "{dq:?}");

    // Late spans into that whole hour, into a minute that already held a trace: the very
    // next read has them (same cache), counted late, and the hour is no longer taken whole.
    let late_at = late_hour + 20 * MINUTE + 40_000 * MS;
    insert(&ch, &trace("late", late_at)).await;
    let w = month();
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(!rolled.summarized.contains_key(&late_hour));
    let g = graph_with(&ch, &settings(), &cache, Level::Region, w).await;
    assert_eq!(entries(&g), recent + 1, "late spans missing from the month");
    assert_eq!(g.data_quality.late_spans, 3);
    assert_eq!(g.data_quality.spans, (recent + 6) * 3);
    let checkout = |g: &orrery_query::model::Graph| {
        g.edges
            .iter()
            .find(|e| e.source == "frontend" && e.target == "checkout")
            .map_or(0, |e| e.metrics.requests)
    };
    assert_eq!(checkout(&g), recent + 1);

    // Once the rollup has recomputed the minutes and re-merged the hour, it is whole again
    // and the answer is the same.
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();
    let w = month();
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(rolled.summarized.contains_key(&late_hour));
    let g = graph_with(&ch, &settings(), &cache, Level::Region, w).await;
    assert_eq!(entries(&g), recent + 1);
    assert_eq!(checkout(&g), recent + 1);
    assert_eq!(g.data_quality.late_spans, 3);
}

/// `parts` with rows in key order (ClickHouse returns groups in any order).
fn sorted(mut parts: Parts) -> Parts {
    parts.0.sort_by(|a, b| a.0.cmp(&b.0));
    parts
        .1
        .sort_by(|a, b| (&a.0, a.1, a.2, a.3).cmp(&(&b.0, b.1, b.2, b.3)));
    parts
}

/// Day rollups (schema v13): a window of several whole days read from day rows is exactly the
/// same window read from hourly rows, and from minute rows (counts, duration sums, every
/// histogram bucket). A late span into an old day takes that day off the day rows at once:
/// its minutes (older than the call copy) are left out and reported, never read from a day
/// merged without them; once the backfill recomputes the hour the day is read from its hours,
/// with the late trace; and the next day pass merges it again — the same answer from days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_days_from_day_rows_equal_hours_and_minutes_and_a_late_span_takes_its_day_off_until_merged()
 {
    let ch = database().await;
    let now = now_ns();
    let today = now.div_euclid(DAY) * DAY;
    let end = floor_hour(now) - 2 * HOUR;
    // The last ~5 days of `month`'s traffic (cut between traces, never inside one).
    let (mut rows, _) = month(end);
    let cut = end - 5 * DAY - 30 * MINUTE;
    rows.retain(|r| r.timestamp >= cut);
    insert(&ch, &rows).await;
    let job = Rollup::new(ch.client(), args());
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();
    backfill_all(&job).await;

    // Ragged both ends; whole days between, up to the day before yesterday (yesterday's last
    // hour waits for today's first to be whole).
    let lo = cut + 7 * HOUR;
    let hi = today - DAY + 5 * HOUR + 13 * MINUTE;
    let w = window(lo, hi);
    let whole: Vec<u32> = ((lo + DAY - 1).div_euclid(DAY) * DAY..today - DAY)
        .step_by(DAY as usize)
        .map(|d| (d / 1_000_000_000) as u32)
        .collect();
    assert!(whole.len() >= 2, "{whole:?}");
    // Before any day pass: hours only.
    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    assert!(rolled.coverage(w).days.is_empty());

    let report = job.roll_days(now_ns()).await.unwrap();
    for d in &whole {
        assert!(
            report.merged.contains(&(*d as i64 * 1_000_000_000)),
            "{report:?}"
        );
    }
    assert!(
        report.merged.windows(2).all(|p| p[0] > p[1]),
        "newest first"
    );
    // A second pass has nothing to do.
    let again = job.roll_days(now_ns()).await.unwrap();
    assert!(
        again.merged.is_empty() && again.plan.pending.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.plan.done, report.merged.len());

    let rolled = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
    let c = rolled.coverage(w);
    assert_eq!(c.days, whole, "{c:?}");
    assert!(c.live.is_empty() && c.uncovered.is_empty(), "{c:?}");
    // No hour inside a day read whole is read again.
    assert!(
        c.hours
            .iter()
            .all(|h| whole.binary_search(&(h - h % 86_400)).is_err()),
        "{c:?}"
    );
    let from_days = sorted(exact_parts(&ch, w, &rolled).await);
    let mut hours_only = rolled.clone();
    hours_only.days.clear();
    hours_only.days_by_count.clear();
    let ch_hours = hours_only.coverage(w);
    assert!(ch_hours.days.is_empty() && ch_hours.hours.len() >= 24 * whole.len());
    let from_hours = sorted(exact_parts(&ch, w, &hours_only).await);
    let minutes_only = Rolled::read(&ch.client(), w.lo, w.hi).await.unwrap();
    let from_minutes = sorted(exact_parts(&ch, w, &minutes_only).await);
    assert_eq!(from_days, from_hours, "days vs hours");
    assert_eq!(from_days, from_minutes, "days vs minutes");
    let (want_edges, want_served) = expected_calls(&rows, w.lo, w.hi);
    assert_eq!(edge_counts(&from_days), want_edges);
    assert_eq!(served_counts(&from_days), want_served);

    // A late trace into the middle of an old day.
    let day = whole[whole.len() / 2] as i64 * 1_000_000_000;
    let old = day + 10 * HOUR + 30 * MINUTE + 30_000 * MS;
    let late = [
        span("late", "1", "", "frontend", "Server", old, 5),
        span("late", "2", "1", "frontend", "Client", old + MS, 3),
        span("late", "3", "2", "checkout", "Server", old + 2 * MS, 2),
    ];
    insert(&ch, &late).await;
    let all: Vec<_> = rows.iter().cloned().chain(late.iter().cloned()).collect();
    let read = || async {
        let mut r = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
        // As a graph reads: minutes older than the call copy are never read from spans.
        r.readable_from = orrery_query::rollup::copy_from(&args(), now_ns());
        r
    };
    let rolled = read().await;
    let c = rolled.coverage(w);
    let day_s = (day / 1_000_000_000) as u32;
    assert!(!c.days.contains(&day_s), "{c:?}");
    assert_eq!(c.days.len(), whole.len() - 1, "{c:?}");
    assert!(
        c.uncovered.iter().any(|&(a, b)| a <= old && old < b),
        "{c:?}"
    );
    // What is shown is exactly the rows outside what it says it leaves out.
    let shown = outside(&all, &c.uncovered);
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);
    // Its spans are counted in the window (a minute marked empty: not "late", it never held
    // a rolled-up span).
    let in_window = |rows: &[orrery_store::SpanRow]| {
        rows.iter()
            .filter(|r| r.timestamp >= w.lo && r.timestamp < w.hi)
            .count() as u64
    };
    assert_eq!(rolled.quality(w).spans, in_window(&all));

    // The backfill recomputes the hour: the day is read from its (current) hours, late trace
    // included, while its day rows are stale.
    backfill_all(&job).await;
    let rolled = read().await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty() && c.live.is_empty(), "{c:?}");
    assert!(!c.days.contains(&day_s), "a stale day read whole: {c:?}");
    assert!(
        (0..24).all(|k| c.hours.contains(&(day_s + k * 3600))),
        "{c:?}"
    );
    let (want_edges, want_served) = expected_calls(&all, w.lo, w.hi);
    let from_hours = sorted(exact_parts(&ch, w, &rolled).await);
    assert_eq!(edge_counts(&from_hours), want_edges);
    assert_eq!(served_counts(&from_hours), want_served);

    // The day pass merges that day again; the same answer from days.
    let report = job.roll_days(now_ns()).await.unwrap();
    assert_eq!(report.merged, vec![day], "{report:?}");
    let rolled = read().await;
    let c = rolled.coverage(w);
    assert_eq!(c.days, whole, "{c:?}");
    let from_days = sorted(exact_parts(&ch, w, &rolled).await);
    assert_eq!(from_days, from_hours);
}

/// Rows of the minute rollups older than `before` deleted, as schema v14's TTL drops them.
async fn drop_minutes(ch: &ClickHouseArgs, before: i64) {
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

/// Schema v14 keeps minute rollups ~a day: an hour older than that stands on its hour marker
/// (its span count). With every old minute gone, an old window of whole hours is still exact
/// (counts, sums, histograms) and the backfill does not recompute it; its ragged ends — minutes
/// that are gone — are left out and reported, never read as minutes without traffic; an hour
/// whose marker has no span count (written before v14), or one with a late span, is left out
/// and reported (with its neighbours) until the backfill recomputes them, then exact again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_whose_minutes_are_gone_stand_on_their_markers_and_missing_minutes_are_never_empty() {
    let ch = database().await;
    let now = now_ns();
    let end = floor_hour(now) - 2 * HOUR;
    let (mut rows, _) = month(end);
    let first = end - 2 * DAY - 30 * MINUTE;
    rows.retain(|r| r.timestamp >= first);
    insert(&ch, &rows).await;
    let job = Rollup::new(ch.client(), args());
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();
    backfill_all(&job).await;
    let cut = orrery_query::rollup::minutes_from(now_ns());
    drop_minutes(&ch, cut).await;
    // Nothing to recompute: the old hours' markers still match their counts.
    assert_eq!(
        job.backfill_plan(now_ns()).await.unwrap().pending,
        vec![],
        "hours recomputed only because their minutes are gone"
    );

    let client = ch.client();
    let read = |w: Window| {
        let client = client.clone();
        async move {
            let mut r = Rolled::read_window(&client, w.lo, w.hi).await.unwrap();
            r.readable_from = orrery_query::rollup::copy_from(&args(), now_ns());
            r
        }
    };
    let in_range = |rows: &[orrery_store::SpanRow], ranges: &[(i64, i64)]| -> Vec<_> {
        rows.iter()
            .filter(|r| {
                !ranges
                    .iter()
                    .any(|&(a, b)| a <= r.timestamp && r.timestamp < b)
            })
            .cloned()
            .collect()
    };
    // Whole old hours: exact.
    let w = window(cut - 24 * HOUR, cut - 2 * HOUR);
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty() && c.live.is_empty(), "{c:?}");
    assert_eq!(c.hours.len() + 24 * c.days.len(), 22, "{c:?}");
    let parts = exact_parts(&ch, w, &rolled).await;
    let (want_edges, want_served) = expected_calls(&rows, w.lo, w.hi);
    assert_eq!(edge_counts(&parts), want_edges);
    assert_eq!(served_counts(&parts), want_served);
    let spans_in = |lo: i64, hi: i64| {
        rows.iter()
            .filter(|r| r.timestamp >= lo && r.timestamp < hi)
            .count() as u64
    };
    assert_eq!(rolled.quality(w).spans, spans_in(w.lo, w.hi));

    // Ragged ends in hours whose minutes are gone: what they hold is left out and said to be.
    let w = window(cut - 24 * HOUR + 7 * MINUTE, cut - 3 * HOUR + 50 * MINUTE);
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    let ends = [(w.lo, cut - 23 * HOUR), (cut - 3 * HOUR, w.hi)];
    for (a, b) in ends {
        if spans_in(a, b) > 0 {
            assert!(
                c.uncovered.iter().any(|&(x, y)| x < b && y > a),
                "spans in {a}..{b} not reported: {c:?}"
            );
        }
    }
    assert!(
        c.uncovered.iter().all(|&(a, b)| spans_in(a, b) > 0),
        "{c:?}"
    );
    let parts = exact_parts(&ch, w, &rolled).await;
    let shown = in_range(&rows, &c.uncovered);
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);

    // An hour marker without a span count (as written before v14), and a late trace into
    // another old hour: both left out and reported with their neighbours, never summed.
    let w = window(cut - 24 * HOUR, cut - 2 * HOUR);
    let pre_v14 = cut - 20 * HOUR;
    ch.client()
        .query(
            "INSERT INTO orrery_graph_hours (Hour, ComputedAt, MinutesVersion, Spans)
             SELECT Hour, max(ComputedAt) + 1, argMax(MinutesVersion, ComputedAt), -1
             FROM orrery_graph_hours WHERE Hour = toDateTime({h:UInt32}) GROUP BY Hour",
        )
        .param("h", (pre_v14 / 1_000_000_000) as u32)
        .execute()
        .await
        .unwrap();
    let late_hour = cut - 10 * HOUR;
    let old = late_hour + 30 * MINUTE + 30_000 * MS;
    let late = [
        span("late", "1", "", "frontend", "Server", old, 5),
        span("late", "2", "1", "frontend", "Client", old + MS, 3),
        span("late", "3", "2", "checkout", "Server", old + 2 * MS, 2),
    ];
    insert(&ch, &late).await;
    let all: Vec<_> = rows.iter().cloned().chain(late.iter().cloned()).collect();
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    let hours: BTreeSet<u32> = c.hours.iter().copied().collect();
    for h in [pre_v14, late_hour] {
        assert!(
            !hours.contains(&((h / 1_000_000_000) as u32)),
            "{h} read whole: {c:?}"
        );
        for x in [h - HOUR, h, h + HOUR] {
            if spans_in(x, x + HOUR) > 0 {
                assert!(
                    c.uncovered.iter().any(|&(a, b)| a < x + HOUR && b > x),
                    "{x} not reported: {c:?}"
                );
            }
        }
    }
    let parts = exact_parts(&ch, w, &rolled).await;
    let shown = in_range(&all, &c.uncovered);
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);
    // The backfill recomputes exactly those hours and their neighbours; then exact again.
    let pending: BTreeSet<i64> = backfill_all(&job).await.into_iter().collect();
    for h in [pre_v14, late_hour] {
        assert!(pending.contains(&h), "{pending:?}");
    }
    assert!(pending.len() <= 6, "{pending:?}");
    assert!(
        job.backfill_plan(now_ns())
            .await
            .unwrap()
            .pending
            .is_empty()
    );
    drop_minutes(&ch, cut).await;
    let rolled = read(w).await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty(), "{c:?}");
    let parts = exact_parts(&ch, w, &rolled).await;
    let (want_edges, want_served) = expected_calls(&all, w.lo, w.hi);
    assert_eq!(edge_counts(&parts), want_edges);
    assert_eq!(served_counts(&parts), want_served);
}

/// Day markers with their span count (schema v15): a graph takes a day whole by its day
/// marker and its count — of the day and the hour either side — without its hour markers. On
/// the real engine: days taken so equal their hours and minutes; day markers from before v15
/// (no count) fall back to the version rule and the next day pass gives them counts; and a
/// late parent backdated into the last second of the day before — outside the day, so the
/// day's own count does not move, yet its first minute's calls change (an orphan child becomes
/// an edge) — takes both days off the day rows at once, until the hours are recomputed and the
/// days merged again, then exact with the late call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_taken_whole_by_its_count_and_a_late_parent_next_to_it_takes_it_off() {
    let ch = database().await;
    let now = now_ns();
    let today = now.div_euclid(DAY) * DAY;
    let end = floor_hour(now) - 2 * HOUR;
    let (mut rows, _) = month(end);
    let cut = end - 5 * DAY - 30 * MINUTE;
    rows.retain(|r| r.timestamp >= cut);
    let lo = cut + 7 * HOUR;
    let hi = today - DAY + 5 * HOUR + 13 * MINUTE;
    let w = window(lo, hi);
    let whole: Vec<u32> = ((lo + DAY - 1).div_euclid(DAY) * DAY..today - DAY)
        .step_by(DAY as usize)
        .map(|d| (d / 1_000_000_000) as u32)
        .collect();
    assert!(whole.len() >= 2, "{whole:?}");
    let ns = |d: u32| d as i64 * 1_000_000_000;
    let day = ns(whole[1]);
    // A child stored on time in the day's first second whose parent is late: an orphan in
    // the day's rows until its parent arrives, at the last instant of the day before.
    let child = span("late", "3", "2", "checkout", "Server", day + 2 * MS, 4);
    rows.push(child.clone());
    insert(&ch, &rows).await;
    let job = Rollup::new(ch.client(), args());
    job.run_once(now_ns(), Duration::from_secs(8 * 3600))
        .await
        .unwrap();
    backfill_all(&job).await;
    let report = job.roll_days(now_ns()).await.unwrap();
    assert!(
        whole.iter().all(|d| report.merged.contains(&ns(*d))),
        "{report:?}"
    );
    let read = || async {
        let mut r = Rolled::read_window(&ch.client(), w.lo, w.hi).await.unwrap();
        r.readable_from = orrery_query::rollup::copy_from(&args(), now_ns());
        r
    };
    let by_count = |r: &Rolled| -> Vec<u32> {
        r.days_by_count
            .iter()
            .map(|d| (d / 1_000_000_000) as u32)
            .collect()
    };

    // Every whole day by its count; the same rows as its hours and its minutes.
    let rolled = read().await;
    assert_eq!(by_count(&rolled), whole);
    let c = rolled.coverage(w);
    assert_eq!(c.days, whole, "{c:?}");
    assert!(c.live.is_empty() && c.uncovered.is_empty(), "{c:?}");
    let from_days = sorted(exact_parts(&ch, w, &rolled).await);
    let minutes_only = Rolled::read(&ch.client(), w.lo, w.hi).await.unwrap();
    assert_eq!(from_days, sorted(exact_parts(&ch, w, &minutes_only).await));
    assert_eq!(rolled.quality(w).spans, minutes_only.quality(w).spans);

    // Day markers as schema v14 wrote them (no count): the version rule decides, the same
    // answer; the next day pass merges every day once more, with its count.
    ch.client()
        .query(
            "ALTER TABLE orrery_graph_days UPDATE Spans = -1 WHERE 1 SETTINGS mutations_sync = 2",
        )
        .execute()
        .await
        .unwrap();
    let rolled = read().await;
    assert!(
        rolled.days_by_count.is_empty(),
        "{:?}",
        rolled.days_by_count
    );
    assert_eq!(rolled.coverage(w).days, whole);
    assert_eq!(sorted(exact_parts(&ch, w, &rolled).await), from_days);
    let report = job.roll_days(now_ns()).await.unwrap();
    assert!(
        whole.iter().all(|d| report.merged.contains(&ns(*d))),
        "{report:?}"
    );
    assert_eq!(by_count(&read().await), whole);

    // The late parent, in the day before's last second: neither day is read whole.
    let late = [
        span("late", "1", "", "frontend", "Server", day - 10 * MS, 20),
        span("late", "2", "1", "frontend", "Client", day - 5 * MS, 15),
    ];
    insert(&ch, &late).await;
    let all: Vec<_> = rows.iter().cloned().chain(late.iter().cloned()).collect();
    let rolled = read().await;
    let c = rolled.coverage(w);
    for d in [whole[0], whole[1]] {
        assert!(!rolled.days_by_count.contains(&ns(d)), "{d}: {c:?}");
        assert!(
            !c.days.contains(&d),
            "a day read whole past a late parent: {c:?}"
        );
    }
    assert!(
        c.uncovered.iter().any(|&(a, b)| a < day && day <= b),
        "{c:?}"
    );
    // Exactly the rows outside what it says it leaves out.
    let shown = outside(&all, &c.uncovered);
    let parts = exact_parts(&ch, w, &rolled).await;
    assert_eq!(edge_counts(&parts), expected_calls(&shown, w.lo, w.hi).0);

    // Recomputed hours: both days from their hours, with the late call; then merged again
    // (with counts), the same answer from days.
    backfill_all(&job).await;
    let rolled = read().await;
    let c = rolled.coverage(w);
    assert!(c.uncovered.is_empty() && c.live.is_empty(), "{c:?}");
    assert!(!c.days.contains(&whole[1]), "a stale day read whole: {c:?}");
    let (want_edges, want_served) = expected_calls(&all, w.lo, w.hi);
    let from_hours = sorted(exact_parts(&ch, w, &rolled).await);
    assert_eq!(edge_counts(&from_hours), want_edges);
    assert_eq!(served_counts(&from_hours), want_served);
    let report = job.roll_days(now_ns()).await.unwrap();
    assert!(report.merged.contains(&day), "{report:?}");
    let rolled = read().await;
    assert_eq!(by_count(&rolled), whole);
    assert_eq!(rolled.coverage(w).days, whole);
    assert_eq!(sorted(exact_parts(&ch, w, &rolled).await), from_hours);
}
