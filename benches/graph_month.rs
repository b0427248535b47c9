//! A month-long service graph from hourly rollups (issue 14 item 3): fills a fresh database
//! (retention kept forever) with `--spans` spans (default 10M) of `--services` services spread
//! over `--days` days (default 31) — written by the engine itself, as a spans table that
//! predates the query service — then rolls everything up the way a fresh install does (the
//! minute rollup's 48 h, then the hourly backfill newest first, timed), and times the 30-day
//! graph cold (a new parts cache each run) and warm. Prints the figures.
//!
//! `cargo bench --bench graph_month -- [--spans N] [--services N] [--days N] [--runs N]
//! [--url URL --database DB] [--fill 0]`: `--url` uses a running server instead of a new
//! embedded one (`http://default:<secret>@127.0.0.1:<port>`), `--fill 0` keeps what `--database`
//! already holds (filled and rolled up by an earlier run with `--url`) and only times the
//! graphs — for iterating on the read path without refilling a month each time.

#[path = "support/args.rs"]
mod args;
use args::{arg, arg_str};
use std::time::{Duration, Instant};

use anyhow::Result;
use orrery_query::GraphArgs;
use orrery_query::graph::{self, GraphRequest, Level};
use orrery_query::rollup::Rollup;
use orrery_store::ClickHouseArgs;
use orrery_store::schema::{self, SchemaParams};
use orrery_store::testing::TestServer;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MS: i64 = 1_000_000;
const HOUR: i64 = 3_600_000 * MS;
const DAY: i64 = 24 * HOUR;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

#[tokio::main]
async fn main() -> Result<()> {
    let spans = arg("--spans", 10_000_000);
    let services = arg("--services", 200).max(2);
    let days = arg("--days", 31) as i64;
    let runs = arg("--runs", 10).max(1);
    println!("load average at start: {}", load());
    let fill = arg("--fill", 1) != 0;
    let database = arg_str("--database").unwrap_or_else(|| "month".into());
    // The server: one given by `--url`, else a new embedded one (gone with this process).
    let (url, _server) = match arg_str("--url") {
        Some(url) => (url, None),
        None => {
            let server = tokio::task::spawn_blocking(TestServer::start).await?;
            (server.url.clone(), Some(server))
        }
    };
    let mut ch = ClickHouseArgs::for_url(&url, &database);
    ch.retention_days = 0;
    let client = ch.client();
    let settings = GraphArgs::default();
    if fill {
        fill_and_roll_up(&ch, &url, &settings, spans, services, days).await?;
    }

    // A running query service's minute rollup keeps the live tail at seconds (it runs every
    // `--graph-rollup-interval`): one pass now, so the graphs below do not join the minutes
    // spent filling and backfilling from spans — that would time the live part, not a month.
    let rollup = Rollup::new(client.clone(), settings.clone());
    rollup
        .run_once(orrery_query::now_ns(), Duration::from_secs(15 * 60))
        .await?;
    // The day rollup (schema v13), as the query service's backfill task runs it once a pass:
    // every closed day whose hours are current becomes one row per edge and node.
    let t = Instant::now();
    let days = rollup.roll_days(orrery_query::now_ns()).await?;
    println!(
        "day rollup: {} days merged in {:.2} s ({} already current, {} waiting for their hours; load {})",
        days.merged.len(),
        t.elapsed().as_secs_f64(),
        days.plan.done,
        days.plan.waiting,
        load()
    );

    // The 30-day graph: cold (a new parts cache: every rolled-up part read from ClickHouse)
    // and warm (one cache, as one query service has).
    let req = |now: i64| GraphRequest {
        level: Level::Region,
        region: None,
        focus: None,
        window: orrery_query::params::span(now - 30 * DAY, now, now).unwrap(),
        whats_wrong: true,
        group: Default::default(),
    };
    let mut cold = Vec::new();
    let mut edges = 0;
    let mut coverage = 0.0;
    for _ in 0..runs {
        let cache = graph::cache::RolledCache::default();
        let t = Instant::now();
        let g = graph::graph(&client, &settings, &cache, &req(orrery_query::now_ns())).await?;
        cold.push(t.elapsed());
        edges = g.edges.len();
        coverage = g.data_quality.rollup_coverage;
    }
    let cache = graph::cache::RolledCache::default();
    let mut warm = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        graph::graph(&client, &settings, &cache, &req(orrery_query::now_ns())).await?;
        warm.push(t.elapsed());
    }
    if arg("--phases", 1) != 0 {
        phases(&client, &settings, req(orrery_query::now_ns()).window).await?;
    }
    let (c50, c99) = pct(cold);
    let (w50, w99) = pct(warm);
    println!(
        "30-day graph ({edges} edges, rollup_coverage {coverage}): cold p50 {c50:.1} ms p99 {c99:.1} ms; warm p50 {w50:.1} ms p99 {w99:.1} ms (target cold <= 300 ms; load {})",
        load()
    );
    Ok(())
}

/// One cold read of the 30-day window step by step (each step alone, in the order a graph
/// runs them; a graph runs the parts concurrently), printed: where the time goes.
async fn phases(
    client: &clickhouse::Client,
    s: &GraphArgs,
    w: orrery_query::graph::fetch::Window,
) -> Result<()> {
    use orrery_query::graph::fetch::{self, EdgeFilter, Grouping, NodeKey, Rolled};
    let cache = graph::cache::RolledCache::default();
    let base = w.baseline();
    let t = Instant::now();
    let mut rolled = Rolled::read_window(client, base.lo, w.hi).await?;
    rolled.max_unrolled = s.graph_max_unrolled.as_nanos() as i64;
    rolled.readable_from = w.now - s.graph_rollup_backfill.as_nanos() as i64;
    let markers = t.elapsed();
    let t = Instant::now();
    let c = rolled.coverage(w);
    let _ = rolled.quality(w);
    let base = fetch::Window {
        hi: rolled.coverage(base).live_lo.max(base.lo),
        ..base
    };
    let plan = t.elapsed();
    let t = Instant::now();
    let e = fetch::edges_in(
        client,
        s,
        &cache,
        w,
        &rolled,
        Grouping::Services,
        &EdgeFilter::None,
    )
    .await?;
    let edges = t.elapsed();
    let t = Instant::now();
    fetch::nodes_in(client, s, &cache, w, &rolled, &NodeKey::Services).await?;
    let nodes = t.elapsed();
    let t = Instant::now();
    fetch::edges_in(
        client,
        s,
        &cache,
        base,
        &rolled,
        Grouping::Services,
        &EdgeFilter::None,
    )
    .await?;
    let baseline = t.elapsed();
    let t = Instant::now();
    fetch::namespaces(client, w).await?;
    let namespaces = t.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "phases of one cold 30-day read: markers {:.1} ms, coverage+quality {:.1} ms, edges {:.1} ms ({} edges, {} days, {} hours, {} live ranges), nodes {:.1} ms, baseline edges {:.1} ms, namespaces {:.1} ms",
        ms(markers),
        ms(plan),
        ms(edges),
        e.len(),
        c.days.len(),
        c.hours.len(),
        c.live.len(),
        ms(nodes),
        ms(baseline),
        ms(namespaces),
    );
    Ok(())
}

/// Fills `ch`'s database with a month of spans, as a spans table that predates the query
/// service, then rolls it up as a fresh install does (timed, printed).
async fn fill_and_roll_up(
    ch: &ClickHouseArgs,
    url: &str,
    settings: &GraphArgs,
    spans: u64,
    services: u64,
    days: i64,
) -> Result<()> {
    schema::migrate(&ch.server_client(url), &SchemaParams::from_args(ch)?).await?;
    let client = ch.client();
    let now = orrery_query::now_ns();
    let end = now - 2 * 60_000 * MS;
    let start = end - days * DAY;
    let pairs = spans / 2;
    let step_ms = ((days * DAY / MS) as u64 / pairs.max(1)).max(1);

    // Each pair: a root client span of service a and its server child in service b (three
    // callees per caller), durations 1 ms-1 s, every 50th call failing.
    let t = Instant::now();
    client
        .query(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
                ServiceName, ResourceAttributes, Duration, StatusCode)
             SELECT fromUnixTimestamp64Milli({start:Int64} + intDiv(number, 2) * {step:UInt64} + number % 2),
                leftPad(lower(hex(toUInt64(intDiv(number, 2)))), 32, '0'),
                lower(hex(toUInt64(number + 1))),
                if(number % 2 = 0, '', lower(hex(toUInt64(number)))),
                if(number % 2 = 0, 'call', 'handle'),
                if(number % 2 = 0, 'Client', 'Server'),
                concat('svc-', toString(if(number % 2 = 0, intDiv(number, 2) % {n:UInt64},
                    (intDiv(number, 2) % {n:UInt64} + 1 + intDiv(number, 2) % 3) % {n:UInt64}))) AS svc,
                map('service.name', svc, 'cloud.region', concat('r', toString(intDiv(number, 2) % 3))),
                (intDiv(number, 2) * 7919 % 1000 + 1) * 1000000,
                if(intDiv(number, 2) % 50 = 0 AND number % 2 = 1, 'Error', 'Unset')
             FROM numbers({spans:UInt64})",
        )
        .param("start", start / MS)
        .param("step", step_ms)
        .param("n", services)
        .param("spans", pairs * 2)
        .execute()
        .await?;
    println!(
        "filled {} spans, {services} services, {days} days: {:.1} s",
        pairs * 2,
        t.elapsed().as_secs_f64()
    );

    // A fresh install: the minute rollup's horizon, then the hourly backfill, newest first.
    let rollup = Rollup::new(client.clone(), settings.clone());
    let t = Instant::now();
    loop {
        // From the start of the horizon's hour, as the service's long runs do.
        let now = orrery_query::now_ns();
        let from = rollup.backfill_horizon(now);
        let r = rollup
            .run_once(now, Duration::from_nanos((now - from) as u64))
            .await?;
        if r.computed.len() < 1440 {
            break;
        }
    }
    // The minute rollup's horizon: --graph-rollup-backfill, but never past the minutes kept
    // (schema v14, `rollup::minutes_from`).
    let now = orrery_query::now_ns();
    println!(
        "minute rollup of the last {} h: {:.1} s",
        (now - rollup.backfill_horizon(now)) / 3_600_000_000_000,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut hours = 0;
    loop {
        let plan = rollup.backfill_plan(orrery_query::now_ns()).await?;
        let Some(&(newest, _)) = plan.pending.first() else {
            break;
        };
        let group: Vec<i64> = plan
            .pending
            .iter()
            .map(|p| p.0)
            .enumerate()
            .take_while(|(i, h)| *h == newest - *i as i64 * HOUR && *i < 6)
            .map(|(_, h)| h)
            .collect();
        let (done, _) = rollup.backfill_step(&group, orrery_query::now_ns()).await?;
        hours += done.len();
    }
    let took = t.elapsed().as_secs_f64();
    println!(
        "hourly backfill: {hours} hours in {took:.1} s ({:.2} s per hour, load {})",
        took / hours.max(1) as f64,
        load()
    );
    Ok(())
}
