//! Query-service benchmark on the embedded ClickHouse: fills a fresh database with a synthetic
//! mesh (default 200 services, 10M spans over 24 h), rolls it up, then times the graph for 1 h
//! and 24 h windows, trace by id, and trace search by service/duration and by attribute.
//! Prints p50/p99 per query and the rollup's cost.
//!
//! `cargo run --release -p orrery-query --bin orrery-query-bench -- [--spans N] [--services N] [--runs N] [--graph 0]`
//!
//! `--graph 0` skips the rollup backfill and the graph queries (trace queries only).

use std::time::{Duration, Instant};

use anyhow::Result;
use orrery_query::graph::{self, GraphRequest, Level};
use orrery_query::rollup::Rollup;
use orrery_query::traces::{self, Order, Search};
use orrery_query::{GraphArgs, params};
use orrery_store::SpanRow;
use orrery_store::testing::TestServer;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MS: i64 = 1_000_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Mesh {
    services: usize,
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
        Some(rng.random_range(lo..hi))
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

#[tokio::main]
async fn main() -> Result<()> {
    let spans_target = arg("--spans", 10_000_000);
    let services = arg("--services", 200) as usize;
    let runs = arg("--runs", 20);
    let with_graph = arg("--graph", 1) != 0;
    let server = tokio::task::spawn_blocking(TestServer::start).await?;
    let ch = server.fresh_database().await;
    let client = ch.client();
    let mesh = Mesh { services };
    let mut rng = SmallRng::seed_from_u64(7);
    let now = orrery_query::now_ns();
    let day = 86_400_000 * MS;

    // Fill: traces spread over the last 24 h.
    let t0 = Instant::now();
    let mut written = 0u64;
    let mut ids = Vec::new();
    let mut batch = Vec::with_capacity(110_000);
    while written < spans_target {
        batch.clear();
        while batch.len() < 100_000 {
            let ts = now - 60_000 * MS - rng.random_range(0..day - 120_000 * MS);
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
        "filled {written} spans, {services} services, 24 h: {:.1} s ({:.0} spans/s)",
        fill.as_secs_f64(),
        written as f64 / fill.as_secs_f64()
    );

    let settings = GraphArgs::default();
    let hour = 3_600_000 * MS;
    if with_graph {
        // Rollup: backfill the day and measure cost per minute of spans.
        let rollup = Rollup::new(client.clone(), settings.clone());
        let t = Instant::now();
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
        let per_minute = took.as_secs_f64() / minutes.max(1) as f64;
        let spans_per_minute = written as f64 / 1440.0;
        println!(
            "rollup: {minutes} minutes in {:.1} s = {:.1} ms per minute of {:.0} spans ({:.0} spans/s of rollup throughput on one query at a time)",
            took.as_secs_f64(),
            per_minute * 1e3,
            spans_per_minute,
            spans_per_minute / per_minute
        );

        let graph_req = |since: i64| GraphRequest {
            level: Level::Region,
            region: None,
            focus: None,
            window: params::span(now - since, now, now).unwrap(),
            whats_wrong: true,
        };
        let g = graph::graph(&client, &settings, &graph_req(hour)).await?;
        println!(
            "graph 1 h: {} nodes, {} edges",
            g.nodes.len(),
            g.edges.len()
        );
        time("graph, 1 h window (with what's-wrong)", runs, |_| {
            let (c, s, r) = (client.clone(), settings.clone(), graph_req(hour));
            async move { graph::graph(&c, &s, &r).await }
        })
        .await?;
        time("graph, 24 h window (with what's-wrong)", runs, |_| {
            let (c, s, r) = (
                client.clone(),
                settings.clone(),
                graph_req(day - 60_000 * MS),
            );
            async move { graph::graph(&c, &s, &r).await }
        })
        .await?;
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
        async move {
            let ids = traces::search_ids(&c, w, &s).await?;
            traces::summaries(&c, &ids, w, 600_000 * MS).await
        }
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
            async move {
                let ids = traces::search_ids(&c, w, &s).await?;
                traces::summaries(&c, &ids, w, 600_000 * MS).await
            }
        },
    )
    .await?;
    Ok(())
}
