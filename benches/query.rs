//! Query-service benchmark on the embedded ClickHouse: fills a fresh database with a synthetic
//! mesh (default 200 services, 10M spans over 24 h), rolls it up, then times the graph for 1 h
//! and 24 h windows, trace by id, and trace search by service/duration and by attribute.
//! Prints p50/p99 per query and the rollup's cost.
//!
//! `cargo bench --bench query -- [--spans N] [--services N] [--runs N] [--graph 0] [--big-trace N]`
//! (a root bench target so `orrery-query` carries no bench binary; release profile).
//!
//! The live edge under continuous ingest (issue 14 item 2): `--rate R --window-s S` writes
//! R spans/s spread over the last S seconds (`--spans` is then R×S), `--callees K` gives every
//! service K fixed callees in the next layer (`--services 2000 --callees 3`: ~5,000 edges, like
//! `orrery mesh --services 2000`; without it a call picks any service of the next layer, so
//! 2,000 services make ~400,000 edges). The bench rolls minutes up to the frontier, then the
//! 10-second slots after them (CPU of each, scaled to 100k spans/s), then times the 15-minute
//! graph cold and its live tail's parts: the live call rows with the near parent lookup the
//! graph uses and with the whole lookback, and the parent lookup alone both ways.
//!
//! `--graph 0` skips the rollup backfill and the graph queries (trace queries only).
//! `--big-trace N` also stores one trace of N spans and times its trace-by-id answer in parts
//! (ClickHouse fetch + decode, tree building, JSON). `--url U --database D --fill 0` reuses a
//! database an earlier run filled (on a server started by hand; `--server-pid P` to count its
//! CPU), so queries can be re-timed without refilling. `--slots 1` rolls up the 10-second
//! slots after the minute backfill, as a running service keeps them (the 1 h window's tail is
//! then read as a service reads it); `--small-tail-spans N` sets `--graph-small-tail-spans`
//! (0: the slots always from slot rows, the code before it) for an A/B on one fill.

#[path = "support/args.rs"]
mod args;
use args::{arg, arg_str};
use std::time::{Duration, Instant};

use anyhow::Result;
use orrery_query::graph::{self, GraphRequest, Level};
use orrery_query::rollup::Rollup;
use orrery_query::traces::{self, Order, Search};
use orrery_query::{GraphArgs, jaeger, params};
use orrery_store::SpanRow;
use orrery_store::testing::TestServer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

// The allocator of the `orrery` binary, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MS: i64 = 1_000_000;

struct Mesh {
    services: usize,
    /// Fixed callees per service (0: any service of the next layer).
    callees: usize,
}

impl Mesh {
    fn name(&self, i: usize) -> String {
        format!("svc-{i:03}")
    }
    /// Layered: the first 10% are front doors, each layer calls into the next.
    fn callee(&self, from: usize, rng: &mut SmallRng) -> Option<usize> {
        let n = self.services;
        let layer = from * 4 / n;
        if layer >= 3 {
            return None;
        }
        let lo = (layer + 1) * n / 4;
        let hi = ((layer + 2) * n / 4).min(n);
        if self.callees == 0 {
            return Some(rng.random_range(lo..hi));
        }
        // Callee j of `from`: a fixed pseudo-random service of the next layer.
        let j = rng.random_range(0..self.callees) as u64;
        let h = ((from as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ j.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_mul(0x1656_67B1_9E37_79F9);
        Some(lo + (h >> 33) as usize % (hi - lo))
    }
}

fn hex(rng: &mut SmallRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// One trace: a root server span, then client/server pairs down the layers, a database call
/// at the leaves.
fn trace(mesh: &Mesh, rng: &mut SmallRng, ts: i64, out: &mut Vec<SpanRow>) {
    let tid = hex(rng, 16);
    let region = ["eu-west-1", "us-east-1", "ap-south-1"][rng.random_range(0..3)];
    let customer = format!("{}", rng.random_range(0..10_000));
    let mk =
        |service: String, kind: &str, id: String, parent: String, ts: i64, dur: u64, err: bool| {
            SpanRow {
                timestamp: ts,
                trace_id: tid.clone(),
                span_id: id,
                parent_span_id: parent,
                span_name: format!("{kind} op"),
                span_kind: kind.into(),
                resource_attributes: vec![
                    ("service.name".into(), service.clone()),
                    ("cloud.region".into(), region.into()),
                ],
                service_name: service,
                span_attributes: vec![("customer.id".into(), customer.clone())],
                duration: dur,
                status_code: if err { "Error".into() } else { "Unset".into() },
                ..Default::default()
            }
        };
    let root_svc = rng.random_range(0..mesh.services / 10);
    let root_id = hex(rng, 8);
    out.push(mk(
        mesh.name(root_svc),
        "Server",
        root_id.clone(),
        String::new(),
        ts,
        50 * MS as u64,
        false,
    ));
    let mut frontier = vec![(root_svc, root_id)];
    let mut t = ts;
    while let Some((svc, parent)) = frontier.pop() {
        let fan = if svc == root_svc { 2 } else { 1 };
        for _ in 0..fan {
            t += MS;
            let dur = rng.random_range(1..40) as u64 * MS as u64;
            let err = rng.random_range(0..100) == 0;
            let cid = hex(rng, 8);
            match mesh.callee(svc, rng) {
                Some(callee) => {
                    out.push(mk(
                        mesh.name(svc),
                        "Client",
                        cid.clone(),
                        parent.clone(),
                        t,
                        dur + MS as u64,
                        false,
                    ));
                    let sid = hex(rng, 8);
                    out.push(mk(
                        mesh.name(callee),
                        "Server",
                        sid.clone(),
                        cid,
                        t + MS / 2,
                        dur,
                        err,
                    ));
                    frontier.push((callee, sid));
                }
                None => {
                    let mut db = mk(mesh.name(svc), "Client", cid, parent.clone(), t, dur, err);
                    db.span_attributes
                        .push(("db.system.name".into(), "postgresql".into()));
                    out.push(db);
                }
            }
        }
    }
}

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// One trace search as the API runs it: matching ids, then their summaries.
async fn search_once(
    c: clickhouse::Client,
    w: graph::Span,
    s: Search,
) -> Result<Vec<orrery_query::model::TraceSummary>> {
    let ids = traces::search_ids(&c, w, &s).await?;
    traces::summaries(&c, &ids, w, 600_000 * MS).await
}

async fn time<F, Fut, T>(label: &str, runs: u64, mut f: F) -> Result<()>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    f(0).await?; // warm-up
    let mut v = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        f(i + 1).await?;
        v.push(t.elapsed());
    }
    let (p50, p99) = pct(v);
    println!("{label:<44} p50 {p50:>8.1} ms   p99 {p99:>8.1} ms   ({runs} runs)");
    Ok(())
}

/// CPU seconds used so far by this process and the ClickHouse server.
fn cpu_now(server_pid: Option<u32>) -> f64 {
    use orrery_store::testing::process::cpu_seconds;
    cpu_seconds(std::process::id()) + server_pid.map(cpu_seconds).unwrap_or(0.0)
}

/// One trace of `n` spans over 8 services (the web big-trace test's shape: a wide, deep tree).
fn big_trace(n: usize, t0: i64) -> Vec<SpanRow> {
    let tid = "00000000000000000000000000b16b16".to_string();
    (0..n)
        .map(|i| SpanRow {
            timestamp: t0 + i as i64 * 1_000,
            trace_id: tid.clone(),
            span_id: format!("{:016x}", i + 1),
            parent_span_id: if i == 0 {
                String::new()
            } else {
                format!("{:016x}", 1 + i * 7919 % i)
            },
            span_name: format!("op-{}", i % 41),
            span_kind: "Server".into(),
            service_name: format!("svc-{}", i / 2_500),
            resource_attributes: vec![("service.name".into(), format!("svc-{}", i / 2_500))],
            scope_name: "big-trace".into(),
            duration: 500_000 + (i as u64 % 97) * 10_000,
            status_code: if i % 101 == 0 { "Error" } else { "Ok" }.into(),
            ..Default::default()
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    if arg("--print-sql", 0) != 0 {
        use orrery_store::graph_rules::{call_rows_sql, minute_filter};
        println!("{}", call_rows_sql(minute_filter::ALL));
        return Ok(());
    }
    let rate = arg("--rate", 0);
    let services = arg("--services", 200) as usize;
    let runs = arg("--runs", 20);
    let with_graph = arg("--graph", 1) != 0;
    let fill = arg("--fill", 1) != 0;
    let big = arg("--big-trace", 0) as usize;
    let (_server, client, server_pid) = match arg_str("--url") {
        Some(url) => {
            let db = arg_str("--database").unwrap_or_else(|| "bench".into());
            let args = orrery_store::ClickHouseArgs::for_url(&url, db);
            // A reused database gets any newer schema too (its rollups are then recomputed).
            let params = orrery_store::schema::SchemaParams::from_args(&args)?;
            orrery_store::schema::migrate(&args.server_client(&url), &params).await?;
            let pid = arg("--server-pid", 0) as u32;
            (None, args.client(), (pid != 0).then_some(pid))
        }
        None => {
            let server = tokio::task::spawn_blocking(TestServer::start).await?;
            let ch = server.fresh_database().await;
            let pid = orrery_store::testing::process::children(std::process::id())
                .first()
                .copied();
            (Some(server), ch.client(), pid)
        }
    };
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mesh = Mesh {
        services,
        callees: arg("--callees", 0) as usize,
    };
    let mut rng = SmallRng::seed_from_u64(7);
    let day = 86_400_000 * MS;
    // `--window-s 60 --spans 6000000`: one minute at 100k spans/s, for the rollup's cost.
    let spread = arg("--window-s", 86_400) as i64 * 1_000 * MS;
    // `--rate R`: continuous ingest, R spans/s over the last `--window-s` seconds.
    let continuous = rate > 0;
    let spans_target = if continuous {
        rate * (spread / 1_000 / MS) as u64
    } else {
        arg("--spans", 10_000_000)
    };

    let (now, ids, written) = if fill {
        let now = if continuous {
            slot_phase(orrery_query::now_ns())
        } else {
            orrery_query::now_ns()
        };
        // Fill: traces spread over the last 24 h.
        let t0 = Instant::now();
        let mut written = 0u64;
        let mut ids = Vec::new();
        let mut batch = Vec::with_capacity(110_000);
        while written < spans_target {
            batch.clear();
            while batch.len() < 100_000 {
                let ts = if continuous {
                    now - rng.random_range(0..spread)
                } else if spread >= day {
                    now - 60_000 * MS - rng.random_range(0..day - 120_000 * MS)
                } else {
                    // One whole minute, closed (the rollup's delay is 30 s).
                    (now / 60_000 / MS - 2) * 60_000 * MS + rng.random_range(0..spread)
                };
                trace(&mesh, &mut rng, ts, &mut batch);
            }
            ids.push(batch[0].trace_id.clone());
            let mut insert = client.insert::<SpanRow>("otel_traces").await?;
            for r in &batch {
                insert.write(r).await?;
            }
            insert.end().await?;
            written += batch.len() as u64;
        }
        let fill = t0.elapsed();
        println!(
            "filled {written} spans, {services} services, over {} s: {:.1} s ({:.0} spans/s)",
            spread / 1_000 / MS,
            fill.as_secs_f64(),
            written as f64 / fill.as_secs_f64()
        );
        (now, ids, written)
    } else {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Stored {
            now: i64,
            spans: u64,
        }
        // "Now" as the fill had it: a continuous fill's spans run up to it (its newest span
        // started a few ms before), so the live tail and the slot frontier are re-timed as
        // the fill's run saw them; other fills end a minute before it.
        let after_newest: i64 = if continuous { 1 } else { 60_000 * MS };
        let st: Stored = client
            .query("SELECT toInt64(toUnixTimestamp64Nano(max(Timestamp))) + {after:Int64} AS now, count() AS spans FROM otel_traces")
            .param("after", after_newest)
            .fetch_one()
            .await?;
        let ids: Vec<String> = client
            .query("SELECT TraceId FROM otel_traces_trace_id_ts ORDER BY cityHash64(TraceId) LIMIT 100")
            .fetch_all()
            .await?;
        println!("reusing {} spans", st.spans);
        (st.now, ids, st.spans)
    };
    footprint(&client, written, "after the fill").await?;

    // `--small-tail-spans 0`: the slots always from slot rows (the code before
    // `--graph-small-tail-spans`), for an A/B on one fill.
    let settings = GraphArgs {
        graph_small_tail_spans: arg("--small-tail-spans", 200_000),
        ..GraphArgs::default()
    };
    // One cache of rolled-up parts for every run, as one query service has.
    let cache = graph::cache::RolledCache::default();
    let hour = 3_600_000 * MS;
    if with_graph {
        // Rollup: backfill the day and measure cost per minute of spans.
        let rollup = Rollup::new(client.clone(), settings.clone());
        if continuous {
            return live_edge(
                &client,
                &rollup,
                &settings,
                &cache,
                now,
                (rate, runs),
                server_pid,
            )
            .await;
        }
        if spread < day && fill {
            // The live edge at this rate: minutes rolled up to the filled minute, which only
            // the 10-second slots cover (as in the minute after it closes, before the minute
            // rollup's delay has passed) — the slots' own cost, then a graph that reads them.
            let filled = (now / 60_000 / MS - 2) * 60_000 * MS;
            rollup
                .run_once(filled + 30_000 * MS, Duration::from_secs(86_400 + 600))
                .await?;
            let t = Instant::now();
            let cpu0 = cpu_now(server_pid);
            let slots = rollup.run_slots(now).await?;
            let cpu = cpu_now(server_pid) - cpu0;
            println!(
                "slot rollup: {} slots ({} spans) in {:.1} s; CPU {:.1} s = {:.3} cores at 100k spans/s (scaled)",
                slots.len(),
                written,
                t.elapsed().as_secs_f64(),
                cpu,
                cpu / written.max(1) as f64 * 1e5,
            );
            let (req, cold) = fifteen_minutes(now, &settings);
            let w = req.window;
            let c = graph::fetch::Rolled::read(&client, w.lo, w.hi)
                .await?
                .coverage(w);
            println!(
                "  15 min window: minutes to {} s before its end, slots to {} s before, then spans",
                (w.hi - c.live_lo) / 1_000_000_000,
                (w.hi - c.slots.1) / 1_000_000_000
            );
            time(
                "graph, 15 min window, its last minute in 10-second slots, cold",
                runs,
                |_| {
                    let (c, s, k, r) = (client.clone(), cold.clone(), cache.clone(), req.clone());
                    async move { graph::graph(&c, &s, &k, &r).await }
                },
            )
            .await?;
        }
        let t = Instant::now();
        let cpu0 = cpu_now(server_pid);
        let mut minutes = 0;
        loop {
            let r = rollup
                .run_once(now, Duration::from_secs(86_400 + 600))
                .await?;
            if r.computed.is_empty() {
                break;
            }
            minutes += r.computed.len();
        }
        let took = t.elapsed();
        let cpu = cpu_now(server_pid) - cpu0;
        let per_minute = took.as_secs_f64() / minutes.max(1) as f64;
        let spans_per_minute = written as f64 / (spread.min(day) as f64 / 60e9).max(1.0);
        println!(
            "rollup backfill: {minutes} minutes (and their hours) in {:.1} s = {:.1} ms per minute of {:.0} spans; CPU {:.1} s (bench + ClickHouse{})",
            took.as_secs_f64(),
            per_minute * 1e3,
            spans_per_minute,
            cpu,
            if server_pid.is_some() {
                ""
            } else {
                ": server pid unknown, bench only"
            },
        );
        // At 100k spans/s a minute holds 6M spans; the per-span CPU cost scaled to that rate.
        let cpu_per_span = cpu / written.max(1) as f64;
        println!(
            "rollup CPU at 100k spans/s (scaled from the backfill): {:.3} CPU-s per minute of spans = {:.3} cores",
            cpu_per_span * 6e6,
            cpu_per_span * 1e5
        );
        footprint(&client, written, "after the rollup backfill").await?;
        if arg("--slots", 0) != 0 {
            // `--slots 1`: the 10-second slots rolled up as a running service keeps them (its
            // rollup loop), so the window's tail is read as a service reads it: slots, then
            // spans — or, under `--graph-small-tail-spans`, the slots from spans too.
            let slots = rollup.run_slots(now).await?;
            println!(
                "slot rollup (the service's live edge): {} slots",
                slots.len()
            );
        }
        // The steady-state check every 15 s with nothing to recompute.
        time("rollup run, nothing new (15 min lookback)", runs, |_| {
            let r = &rollup;
            async move { r.run_once(now, Duration::from_secs(900)).await }
        })
        .await?;

        let graph_req = |since: i64| GraphRequest {
            level: Level::Region,
            region: None,
            focus: None,
            window: params::span(now - since, now, now).unwrap(),
            whats_wrong: true,
            group: Default::default(),
        };
        let g = graph::graph(&client, &settings, &cache, &graph_req(hour)).await?;
        println!(
            "graph 1 h: {} nodes, {} edges",
            g.nodes.len(),
            g.edges.len()
        );
        // Cold: nothing cached (every query reads ClickHouse, as after a restart or for a
        // window nobody looked at this minute): a new, empty parts cache for every run — the
        // cache answers a hit whatever the capacity, so capacity 0 alone is not cold (before
        // 2026-11-30 the "cold" 1 h runs read the parts the call above had cached, i.e. they
        // were warm). Warm: the rolled-up part of the window (closed minutes and hours,
        // unchanged rollup versions) comes from the query service's cache, as for a live map
        // refreshing within the same minute; the live part is always read.
        let cold = GraphArgs {
            graph_cache_entries: 0,
            ..settings.clone()
        };
        let fresh = graph::cache::RolledCache::default;
        for (name, since) in [("1 h", hour), ("24 h", day - 60_000 * MS)] {
            for (kind, s) in [("cold", &cold), ("warm", &settings)] {
                time(
                    &format!("graph, {name} window (with what's-wrong), {kind}"),
                    runs,
                    |_| {
                        let k = if kind == "cold" {
                            fresh()
                        } else {
                            cache.clone()
                        };
                        let (c, s, r) = (client.clone(), s.clone(), graph_req(since));
                        async move { graph::graph(&c, &s, &k, &r).await }
                    },
                )
                .await?;
            }
        }
        {
            // CPU per warm 1 h graph, engine and bench apart (load-robust beside the wall
            // times): with the rolled-up part cached this is the live part's fixed cost.
            use orrery_store::testing::process::cpu_seconds;
            let engine = || server_pid.map(cpu_seconds).unwrap_or(f64::NAN);
            let own = || cpu_seconds(std::process::id());
            let (e0, o0) = (engine(), own());
            for _ in 0..runs {
                graph::graph(&client, &settings, &cache, &graph_req(hour)).await?;
            }
            let per = |x: f64| x / runs.max(1) as f64 * 1e3;
            println!(
                "graph, 1 h window, warm: CPU per graph {:.0} ms in the engine, {:.0} ms in the bench (mean of {runs})",
                per(engine() - e0),
                per(own() - o0),
            );
        }
        // The parts of a cold 1 h graph one at a time (the graph runs them concurrently),
        // each with a new, empty parts cache, on the markers the graph reads.
        {
            use graph::fetch::{self, EdgeFilter, Grouping, NodeKey, Rolled};
            let w = graph_req(hour).window;
            let p = w.baseline();
            let mut rolled = Rolled::read_window(&client, p.lo, w.hi).await?;
            rolled.max_unrolled = cold.graph_max_unrolled.as_nanos() as i64;
            rolled.readable_from = orrery_query::rollup::copy_from(&cold, w.now);
            let cw = rolled.coverage(w);
            println!(
                "  1 h window: live from {} s before its end, {} whole hours",
                (w.hi - cw.live_lo) / 1_000_000_000,
                cw.hours.len()
            );
            let (c, s, rolled) = (&client, &cold, &rolled);
            time(
                "  part: rollup markers + data quality (both windows)",
                runs,
                |_| async move { Rolled::read_window(c, p.lo, w.hi).await },
            )
            .await?;
            time("  part: edges", runs, |_| async move {
                let k = fresh();
                fetch::edges_in(c, s, &k, w, rolled, Grouping::Services, &EdgeFilter::None).await
            })
            .await?;
            let live = graph::Span {
                lo: cw.live_lo,
                ..w
            };
            time("  part: edges, live minutes only", runs, |_| async move {
                let k = fresh();
                fetch::edges_in(
                    c,
                    s,
                    &k,
                    live,
                    rolled,
                    Grouping::Services,
                    &EdgeFilter::None,
                )
                .await
            })
            .await?;
            time(
                "  part: edges of the baseline window (whole hours before)",
                runs,
                |_| async move {
                    let k = fresh();
                    fetch::edges_in(c, s, &k, p, rolled, Grouping::Services, &EdgeFilter::None)
                        .await
                },
            )
            .await?;
            time("  part: nodes", runs, |_| async move {
                let k = fresh();
                fetch::nodes_in(c, s, &k, w, rolled, &NodeKey::Services).await
            })
            .await?;
            time("  part: namespaces", runs, |_| async move {
                fetch::namespaces(c, w).await
            })
            .await?;
        }
    }
    time("trace by id", runs, |i| {
        let c = client.clone();
        let id = ids[i as usize % ids.len()].clone();
        async move {
            let t = traces::trace(&c, &id).await?;
            anyhow::ensure!(t.is_some(), "trace {id} not found");
            Ok(())
        }
    })
    .await?;
    let w = params::span(now - hour, now, now).unwrap();
    time("search: service + min duration, 1 h, limit 20", runs, |i| {
        let c = client.clone();
        let s = Search {
            service: Some(mesh.name(services / 10 + i as usize % 50)),
            min_duration_ns: Some(30 * MS as u64),
            limit: 20,
            order: Order::Newest,
            ..Default::default()
        };
        search_once(c, w, s)
    })
    .await?;
    time(
        "search: attribute customer.id=X, 1 h, limit 20",
        runs,
        |i| {
            let c = client.clone();
            let s = Search {
                attributes: vec![("customer.id".into(), format!("{}", i * 37 % 10_000))],
                limit: 20,
                order: Order::Newest,
                ..Default::default()
            };
            search_once(c, w, s)
        },
    )
    .await?;
    // Jaeger API v3 search as the Jaeger UI sends it: ids, then whole-trace summaries (two
    // aggregates over `TraceId IN (…)`, orphan count included).
    time(
        "jaeger v3 trace-summaries: service, 1 h, depth 20",
        runs,
        |i| {
            let c = client.clone();
            let q = jaeger::search::Query {
                service: Some(mesh.name(services / 10 + i as usize % 50)),
                limit: 20,
                ..Default::default()
            };
            async move {
                let ids = jaeger::search::search_ids(&c, w, &q).await?;
                jaeger::summary::summaries(&c, &ids).await?;
                Ok(())
            }
        },
    )
    .await?;
    // A plain tag also matches event and link attributes (Jaeger's semantics): the cost of
    // reading those columns too.
    time(
        "jaeger tag search customer.id=X, 1 h, depth 20",
        runs,
        |i| {
            let c = client.clone();
            let q = jaeger::search::Query {
                tags: vec![("customer.id".into(), format!("{}", i * 37 % 10_000))],
                limit: 20,
                ..Default::default()
            };
            async move {
                jaeger::search::search_ids(&c, w, &q).await?;
                Ok(())
            }
        },
    )
    .await?;
    if big > 0 {
        let rows = big_trace(big, now - 30 * 60_000 * MS);
        let id = rows[0].trace_id.clone();
        let stored: u64 = client
            .query("SELECT count() FROM otel_traces WHERE TraceId = ?")
            .bind(&id)
            .fetch_one()
            .await?;
        if stored == 0 {
            let mut insert = client.insert::<SpanRow>("otel_traces").await?;
            for r in &rows {
                insert.write(r).await?;
            }
            insert.end().await?;
        }
        let label = format!("big trace ({big} spans): fetch + decode");
        time(&label, runs, |_| {
            let c = client.clone();
            let id = id.clone();
            async move { traces::load_spans(&c, &id).await }
        })
        .await?;
        let rows = traces::load_spans(&client, &id).await?;
        anyhow::ensure!(rows.len() == big, "big trace has {} spans", rows.len());
        time(&format!("big trace ({big} spans): tree"), runs, |_| {
            let rows = rows.clone();
            let id = id.clone();
            async move { Ok(traces::build_trace(&id, rows)) }
        })
        .await?;
        let t = traces::build_trace(&id, rows);
        time(&format!("big trace ({big} spans): JSON"), runs, |_| {
            let t = &t;
            async move { Ok(serde_json::to_vec(t)?.len()) }
        })
        .await?;
        println!("big trace JSON: {} bytes", serde_json::to_vec(&t)?.len());
        time(
            &format!("big trace ({big} spans): whole answer"),
            runs,
            |_| {
                let c = client.clone();
                let id = id.clone();
                async move {
                    let t = traces::trace(&c, &id).await?.expect("stored");
                    Ok(serde_json::to_vec(&t)?.len())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// How long before a graph read a running service's last slot pass ran, in the continuous
/// mode's model: the pass runs when a slot can close and its own time at 30k spans/s (~1 s
/// quiet) plus the last spans' settling passes before the frontier moves.
const SLOT_PASS_LAG_NS: i64 = 1_000 * MS;

/// A continuous fill's "now", moved back (< 10 s) to the phase of the slot cycle at which the
/// live tail is its average length (5–15 s after the grace and the pass's lag: 10 s + lag).
/// The tail is most of a 15-minute graph's cost at 30k spans/s, and with an arbitrary "now"
/// it was anything from 7.5 to 17.5 s: the live part of two fills differed by up to ±40%.
fn slot_phase(now: i64) -> i64 {
    use orrery_query::rollup::SLOT_NS;
    let grace = GraphArgs::default().graph_grace.as_nanos() as i64;
    // The tail is `now - floor(now - grace - lag)`; its middle is half a slot.
    let phase = (grace + SLOT_PASS_LAG_NS + SLOT_NS / 2).rem_euclid(SLOT_NS);
    let aligned = now.div_euclid(SLOT_NS) * SLOT_NS + phase;
    if aligned > now {
        aligned - SLOT_NS
    } else {
        aligned
    }
}

/// The live edge under continuous ingest (`--rate`): minutes rolled up to the frontier, then
/// the slots after them, then the 15-minute graph cold and its live tail in parts.
async fn live_edge(
    client: &clickhouse::Client,
    rollup: &Rollup,
    settings: &GraphArgs,
    cache: &graph::cache::RolledCache,
    now: i64,
    (rate, runs): (u64, u64),
    server_pid: Option<u32>,
) -> Result<()> {
    use orrery_store::graph_rules::{
        LIVE_PARENT_NEAR_NS, call_rows_sql, live_call_rows_sql, minute_filter,
    };
    let scale = 1e5 / rate as f64;
    // Minutes, as the minute rollup keeps them: each minute once, with the whole lookback.
    let (t, cpu0) = (Instant::now(), cpu_now(server_pid));
    let mut minutes = 0;
    loop {
        let r = rollup.run_once(now, Duration::from_secs(3_600)).await?;
        if r.computed.is_empty() {
            break;
        }
        minutes += r.computed.len();
    }
    let cpu = cpu_now(server_pid) - cpu0;
    // Per minute of spans (empty minutes get markers too, at next to no cost).
    let rolled: u64 = client
        .query(
            "SELECT toUInt64(sum(Spans)) FROM orrery_span_minutes
             WHERE Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))",
        )
        .param(
            "hi",
            (now - 30_000 * MS).div_euclid(60_000 * MS) * 60_000 * MS,
        )
        .fetch_one()
        .await?;
    let per_minute = cpu / (rolled.max(1) as f64 / rate as f64 / 60.0);
    println!(
        "minute rollup: {minutes} minutes ({rolled} spans) in {:.1} s; CPU {:.2} s per minute of spans at {rate}/s = {:.3} cores at 100k spans/s (scaled per span)",
        t.elapsed().as_secs_f64(),
        per_minute,
        per_minute / 60.0 * scale,
    );
    // Slots after them: six a minute in steady state. A running service's slot pass runs when
    // a slot can close (`Rollup::slot_pass`: its end + grace, its spans settled) and takes
    // ~1 s at 30k spans/s, so when a graph is read the slots are closed as of ~1 s before.
    let slots_at = now - SLOT_PASS_LAG_NS;
    let (t, cpu0) = (Instant::now(), cpu_now(server_pid));
    let slots = rollup.run_slots(slots_at).await?;
    let cpu = cpu_now(server_pid) - cpu0;
    let per_slot = cpu / slots.len().max(1) as f64;
    println!(
        "slot rollup: {} slots in {:.1} s; CPU {:.2} s per slot = {:.3} cores at {rate}/s, {:.3} cores at 100k spans/s (scaled per span)",
        slots.len(),
        t.elapsed().as_secs_f64(),
        per_slot,
        per_slot * 6.0 / 60.0,
        per_slot * 6.0 / 60.0 * scale,
    );
    println!(
        "rollup CPU at 100k spans/s (minutes + slots, scaled per span): {:.3} cores",
        (per_minute / 60.0 + per_slot * 6.0 / 60.0) * scale
    );
    // The rollup's next tick, as a running rollup job would (a no-op unless counts moved).
    rollup.run_once(now, Duration::from_secs(3_600)).await?;
    let again = rollup.run_slots(slots_at).await?;
    println!("next tick: {} slots recomputed", again.len());
    let (req, cold) = fifteen_minutes(now, settings);
    let w = req.window;
    let c = graph::fetch::Rolled::read(client, w.lo, w.hi)
        .await?
        .coverage(w);
    let tail = c.live.last().copied().unwrap_or((w.hi, w.hi));
    println!(
        "15 min window: minutes to {} s before its end, slots to {} s before, spans after ({} live range(s)): a live tail of {:.1} s before now",
        (w.hi - c.live_lo) / 1_000_000_000,
        (w.hi - c.slots.1) / 1_000_000_000,
        c.live.len(),
        (now - c.slots.1) as f64 / 1e9,
    );
    let g = graph::graph(client, &cold, cache, &req).await?;
    println!(
        "graph 15 min: {} nodes, {} edges",
        g.nodes.len(),
        g.edges.len()
    );
    time(
        "graph, 15 min window, cold (with what's-wrong)",
        runs,
        |_| {
            let (c, s, k, r) = (client.clone(), cold.clone(), cache.clone(), req.clone());
            async move { graph::graph(&c, &s, &k, &r).await }
        },
    )
    .await?;
    {
        // CPU per graph, engine and bench (= the query service's merge and decode) apart: on a
        // shared machine wall times swing with the load, CPU seconds much less.
        use orrery_store::testing::process::cpu_seconds;
        let engine = || server_pid.map(cpu_seconds).unwrap_or(f64::NAN);
        let own = || cpu_seconds(std::process::id());
        let (e0, o0) = (engine(), own());
        for _ in 0..runs {
            graph::graph(client, &cold, cache, &req).await?;
        }
        let per = |x: f64| x / runs.max(1) as f64 * 1e3;
        println!(
            "graph, 15 min window, cold: CPU per graph {:.0} ms in the engine, {:.0} ms in the bench (mean of {runs})",
            per(engine() - e0),
            per(own() - o0),
        );
    }
    {
        // Its parts one at a time (the graph runs them concurrently).
        use graph::fetch::{self, EdgeFilter, Grouping, NodeKey, Rolled};
        let p = w.baseline();
        let rolled = Rolled::read(client, p.lo, w.hi).await?;
        let (c, s, k, rolled) = (client, &cold, cache, &rolled);
        time(
            "  part: rollup markers (window + baseline)",
            runs,
            |_| async move { Rolled::read(c, p.lo, w.hi).await },
        )
        .await?;
        time(
            "  part: edges (rolled + slots + live)",
            runs,
            |_| async move {
                fetch::edges_in(c, s, k, w, rolled, Grouping::Services, &EdgeFilter::None).await
            },
        )
        .await?;
        time(
            "  part: edges of the baseline window",
            runs,
            |_| async move {
                fetch::edges_in(c, s, k, p, rolled, Grouping::Services, &EdgeFilter::None).await
            },
        )
        .await?;
        time("  part: nodes", runs, |_| async move {
            fetch::nodes_in(c, s, k, w, rolled, &NodeKey::Services).await
        })
        .await?;
        time("  part: namespaces", runs, |_| async move {
            fetch::namespaces(c, w).await
        })
        .await?;
    }
    let lookback = settings.graph_parent_lookback.as_nanos() as i64;
    let bind = |sql: &str| {
        client
            .query(sql)
            .param("lo", tail.0)
            .param("hi", tail.1)
            .param("plo", tail.0 - lookback)
            .param("chi", tail.1 + lookback)
            .param("settled", now - settings.graph_grace.as_nanos() as i64)
            .param("region_attrs", &settings.graph_region_attributes)
    };
    let near = format!("SELECT count() FROM ({})", live_call_rows_sql());
    let exact = format!(
        "SELECT count() FROM ({})",
        call_rows_sql(minute_filter::ALL)
    );
    let (n_near, n_exact): (u64, u64) = (
        bind(&near).fetch_one().await?,
        bind(&exact).fetch_one().await?,
    );
    println!(
        "live tail: {} s, {n_near} call rows with the near lookup, {n_exact} with the whole lookback",
        (tail.1 - tail.0) / 1_000_000_000
    );
    for (label, sql) in [
        ("  part: live call rows, near parent lookup", &near),
        ("  part: live call rows, whole lookback", &exact),
    ] {
        time(label, runs, |_| async {
            Ok(bind(sql).fetch_one::<u64>().await?)
        })
        .await?;
    }
    let lookup = |from: &str| {
        format!(
            "SELECT count() FROM orrery_span_calls
            WHERE Timestamp >= fromUnixTimestamp64Nano({from}) AND Timestamp < fromUnixTimestamp64Nano({{chi:Int64}})
              AND SpanKey IN (SELECT ParentKey FROM orrery_span_calls
                WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
                  AND ParentKey != 0)"
        )
    };
    let keys = "SELECT count() FROM orrery_span_calls
        WHERE Timestamp >= fromUnixTimestamp64Nano({plo:Int64}) AND Timestamp < fromUnixTimestamp64Nano({chi:Int64})";
    let in_lookback: u64 = bind(keys).fetch_one().await?;
    println!("  parent lookup range (whole lookback): {in_lookback} span keys");
    let near_lookup = lookup(&format!("{{lo:Int64}} - {LIVE_PARENT_NEAR_NS}"));
    let whole_lookup = lookup("{plo:Int64}");
    for (label, sql) in [
        ("  part: parent lookup alone, near", &near_lookup),
        ("  part: parent lookup alone, whole lookback", &whole_lookup),
    ] {
        time(label, runs, |_| async {
            Ok(bind(sql).fetch_one::<u64>().await?)
        })
        .await?;
    }
    Ok(())
}

/// Bytes on disk per stored span, per table and in all (issue 14 item 5: ≤ 45 B/span), and the
/// same at steady state under the default 7 days' retention, from each table's TTL (schemas
/// v12, v14): the call copy keeps 6–6.5 h (`CALLS_HOURS` + at most one TTL merge interval), the
/// 10-second slots 2–2.5 h (markers 1–1.5 h), the minute rollups 26–26.5 h (markers 25–25.5),
/// everything else the retention. The bench's data
/// covers 24 h, so a table kept for the retention weighs at steady state what it weighs here.
///
/// With `--footprint-steady 1`, after the rollup backfill it also *measures* that state: the
/// short TTLs are scaled by 24 h / 7 days (so the 24 h of data stand for a week), every table
/// is merged with `OPTIMIZE … FINAL` (TTL applied, parts merged as a week-old day's are), and
/// the tables are measured again; the TTLs are put back afterwards. Slow (minutes).
async fn footprint(client: &clickhouse::Client, spans: u64, when: &str) -> Result<()> {
    use orrery_store::schema::{
        CALLS_HOURS, CALLS_TTL_MERGE_S, MINUTE_MARKER_HOURS, MINUTES_HOURS, SLOT_MARKER_HOURS,
        SLOT_ROWS_HOURS,
    };
    const RETENTION_H: f64 = 7.0 * 24.0;
    async fn sizes(client: &clickhouse::Client) -> Result<Vec<(String, u64, u64)>> {
        Ok(client
            .query(
                "SELECT table, sum(bytes_on_disk), sum(rows) FROM system.parts
                 WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table",
            )
            .fetch_all()
            .await?)
    }
    let per = |b: u64| b as f64 / spans.max(1) as f64;
    let merge_h = CALLS_TTL_MERGE_S as f64 / 3600.0;
    let slot_tables = [
        "orrery_graph_edges_10s",
        "orrery_graph_nodes_10s",
        "orrery_span_slots",
        "orrery_graph_slots",
    ];
    let bytes = sizes(client).await?;
    let (mut total, mut steady, mut minute_rows) = (0u64, 0f64, 0f64);
    for (table, b, rows) in &bytes {
        println!(
            "on disk ({when}): {table:<28} {b:>12} bytes  {rows:>10} rows  {:.1} B/span",
            per(*b)
        );
        total += b;
        if table == "orrery_span_calls" {
            // One row a span, kept 6–6.5 h of the retention's 168 (whatever the TTL already
            // dropped here: bytes per row).
            let life = CALLS_HOURS as f64 + merge_h;
            steady += *b as f64 / (*rows).max(1) as f64 * life / RETENTION_H;
        } else if slot_tables.contains(&table.as_str()) {
            // Counted below: the bench rolls up only its last minutes into slots.
        } else if table.ends_with("_1m") || table == "orrery_graph_minutes" {
            // Minute rollups (schema v14): kept 26–26.5 h (markers an hour less) of the 168;
            // the bench's rows cover its whole 24 h.
            let hours = if table == "orrery_graph_minutes" {
                MINUTE_MARKER_HOURS
            } else {
                minute_rows += per(*b);
                MINUTES_HOURS
            };
            steady += per(*b) * (hours as f64 + merge_h).min(RETENTION_H) / RETENTION_H;
        } else {
            steady += per(*b);
        }
    }
    // A slot row has a minute row's shape; a minute holds six slots, each with at most the
    // minute's keys: at most six slot rows per minute row, kept 2–2.5 h.
    let slots = minute_rows * 6.0 * (SLOT_ROWS_HOURS as f64 + merge_h) / RETENTION_H;
    println!(
        "footprint ({when}): all tables {:.1} B/span; estimated at steady state (7 days' retention; call copy {CALLS_HOURS} h, minute rollups {MINUTES_HOURS} h, slots {SLOT_ROWS_HOURS} h at most six rows a minute row: ≤ {slots:.1}) {:.1} B/span",
        per(total),
        steady + slots
    );
    if when != "after the rollup backfill" || arg("--footprint-steady", 0) == 0 {
        return Ok(());
    }
    // Measured: 24 h of data standing for 7 days, the short TTLs scaled alike (minutes).
    let scaled = |hours: u32| (hours as f64 * 60.0 * 24.0 / RETENTION_H).round() as u32;
    let ttl = |table: &str, column: &str, minutes: u32| {
        format!("ALTER TABLE {table} MODIFY TTL {column} + toIntervalMinute({minutes})")
    };
    let restore = |table: &str, column: &str, hours: u32| {
        format!(
            "ALTER TABLE {table} MODIFY TTL {column} + toIntervalHour({hours}) SETTINGS materialize_ttl_after_modify = 0"
        )
    };
    // The minute rollups' TTL runs from the later of the minute and its computation (v14);
    // the bench computed every minute just now, so the scaled TTL runs from the minute, as it
    // does for minutes rolled up as they close.
    let minute_ttl = "greatest(Minute, toDateTime(intDiv(ComputedAt, 1000)))";
    let short = [
        (
            "orrery_span_calls",
            "toDateTime(Timestamp)",
            "toDateTime(Timestamp)",
            CALLS_HOURS,
        ),
        ("orrery_graph_edges_10s", "Slot", "Slot", SLOT_ROWS_HOURS),
        ("orrery_graph_nodes_10s", "Slot", "Slot", SLOT_ROWS_HOURS),
        ("orrery_span_slots", "Slot", "Slot", SLOT_ROWS_HOURS),
        ("orrery_graph_slots", "Slot", "Slot", SLOT_MARKER_HOURS),
        ("orrery_graph_edges_1m", "Minute", minute_ttl, MINUTES_HOURS),
        ("orrery_graph_nodes_1m", "Minute", minute_ttl, MINUTES_HOURS),
        (
            "orrery_graph_minutes",
            "Minute",
            minute_ttl,
            MINUTE_MARKER_HOURS,
        ),
    ];
    let t = Instant::now();
    for (table, column, _, hours) in short {
        client
            .query(&ttl(table, column, scaled(hours)))
            .execute()
            .await?;
    }
    for (table, _, _) in &bytes {
        client
            .query(&format!("OPTIMIZE TABLE {table} FINAL"))
            .execute()
            .await?;
    }
    for (table, _, column, hours) in short {
        client
            .query(&restore(table, column, hours))
            .execute()
            .await?;
    }
    let mut total = 0;
    for (table, b, rows) in sizes(client).await? {
        println!(
            "on disk (merged, TTLs scaled to 24 h for 7 days): {table:<28} {b:>12} bytes  {rows:>10} rows  {:.1} B/span",
            per(b)
        );
        total += b;
    }
    println!(
        "footprint measured at steady state (24 h of data as 7 days' retention: call copy {} min, minute rollups {} min, slots {} min; every table merged with OPTIMIZE FINAL in {:.0} s): {:.1} B/span",
        scaled(CALLS_HOURS),
        scaled(MINUTES_HOURS),
        scaled(SLOT_ROWS_HOURS),
        t.elapsed().as_secs_f64(),
        per(total)
    );
    Ok(())
}

/// The 15-minute region graph ending at `now` (with what's wrong) and settings without the
/// parts cache, so every run is cold: what both 15-minute figures time.
fn fifteen_minutes(now: i64, settings: &GraphArgs) -> (GraphRequest, GraphArgs) {
    let req = GraphRequest {
        level: Level::Region,
        region: None,
        focus: None,
        window: params::span(now - 15 * 60_000 * MS, now, now).unwrap(),
        whats_wrong: true,
        group: Default::default(),
    };
    let cold = GraphArgs {
        graph_cache_entries: 0,
        ..settings.clone()
    };
    (req, cold)
}
