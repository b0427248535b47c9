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

#[path = "query/footprint.rs"]
mod footprint;
#[path = "query/live_edge.rs"]
mod live_edge;
#[path = "query/mesh.rs"]
mod mesh;
use footprint::footprint;
use live_edge::*;
use mesh::*;

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

/// Runs `f` `runs` times and prints its CPU per run, the engine's (`server_pid`) and this
/// process's (= the query service's merge and decode) apart: on a shared machine wall times
/// swing with the load, CPU seconds much less.
async fn cpu_per_graph<F, Fut, T>(
    label: &str,
    runs: u64,
    server_pid: Option<u32>,
    mut f: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    use orrery_store::testing::process::cpu_seconds;
    let engine = || server_pid.map(cpu_seconds).unwrap_or(f64::NAN);
    let own = || cpu_seconds(std::process::id());
    let (e0, o0) = (engine(), own());
    for _ in 0..runs {
        f().await?;
    }
    let per = |x: f64| x / runs.max(1) as f64 * 1e3;
    println!(
        "{label}: CPU per graph {:.0} ms in the engine, {:.0} ms in the bench (mean of {runs})",
        per(engine() - e0),
        per(own() - o0),
    );
    Ok(())
}

/// CPU seconds used so far by this process and the ClickHouse server.
fn cpu_now(server_pid: Option<u32>) -> f64 {
    use orrery_store::testing::process::cpu_seconds;
    cpu_seconds(std::process::id()) + server_pid.map(cpu_seconds).unwrap_or(0.0)
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
    // `--graph-small-tail-spans`); `--live-edge-from-spans`: live graphs read to now (the
    // code before the settled frontier); each for an A/B on one fill.
    let settings = GraphArgs {
        graph_small_tail_spans: arg("--small-tail-spans", 200_000),
        graph_live_edge_from_spans: std::env::args().any(|a| a == "--live-edge-from-spans"),
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
            // The 24 h graph's marker read alone (its first step; two rounds when an hour of
            // the window is read minute by minute).
            let w = graph_req(day - 60_000 * MS).window;
            let (c, lo) = (&client, w.baseline().lo);
            time(
                "  part: rollup markers + data quality, 24 h window (both windows)",
                runs,
                |_| async move { graph::fetch::Rolled::read_window(c, lo, w.hi).await },
            )
            .await?;
        }
        // With the rolled-up part cached, this is the live part's fixed cost.
        cpu_per_graph("graph, 1 h window, warm", runs, server_pid, || {
            let (c, s, k, r) = (
                client.clone(),
                settings.clone(),
                cache.clone(),
                graph_req(hour),
            );
            async move { graph::graph(&c, &s, &k, &r).await }
        })
        .await?;
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
