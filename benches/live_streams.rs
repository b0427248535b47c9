//! 100 live streams of one map vs 1 stream (issue 14 item 4): ClickHouse queries per minute and
//! bytes sent per minute side by side.
//!
//! `cargo bench --bench live_streams`. Optional: ORRERY_BENCH_SERVICES (default 300),
//! ORRERY_BENCH_SECS (each phase, default 60), ORRERY_BENCH_STREAMS (default 100),
//! ORRERY_BENCH_INTERVAL (the stream's interval, default 5s). The real embedded engine and a
//! real query server in this process; a background writer sends a batch of traces every second
//! over a mesh of N services with 2N edges (every edge's counts move every tick, so deltas
//! carry metrics for most edges). Phase 1: one stream; phase 2: STREAMS streams of the same
//! map. Queries are the engine's own count (`system.events` SelectQuery, minus this bench's
//! reads of it); bytes are what the clients received. Prints the figures; asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orrery_query::{GraphArgs, QueryArgs};
use orrery_store::testing::fresh_database;
use orrery_store::{ClickHouseArgs, SpanRow};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const MS: i64 = 1_000_000;

fn span(trace: u64, id: u64, parent: u64, service: &str, kind: &str, ts: i64) -> SpanRow {
    let mut s = orrery_store::testing::span(trace, id, parent, service, kind, ts);
    s.duration = (5 + trace % 50) * 1_000_000;
    if trace.is_multiple_of(17) {
        s.status_code = "Error".into();
    }
    s
}

/// One second of traffic: every edge `i -> (7i+1) % n` and `i -> (13i+5) % n` called 1–3 times.
fn batch(n: u64, second: u64, next_trace: &AtomicU64) -> Vec<SpanRow> {
    let ts = orrery_query::now_ns();
    let mut rows = Vec::new();
    for i in 0..n {
        for (k, j) in [(7 * i + 1) % n, (13 * i + 5) % n].into_iter().enumerate() {
            let calls = 1 + (i + second + k as u64) % 3;
            for _ in 0..calls {
                let t = next_trace.fetch_add(1, Ordering::Relaxed);
                let (a, b) = (format!("svc-{i}"), format!("svc-{j}"));
                rows.push(span(t, 1, 0, &a, "Server", ts));
                rows.push(span(t, 2, 1, &a, "Client", ts + MS));
                rows.push(span(t, 3, 2, &b, "Server", ts + 2 * MS));
            }
        }
    }
    rows
}

async fn insert(ch: &ClickHouseArgs, rows: &[SpanRow]) {
    let client = ch.client();
    let mut ins = client.insert::<SpanRow>("otel_traces").await.unwrap();
    for r in rows {
        ins.write(r).await.unwrap();
    }
    ins.end().await.unwrap();
}

async fn selects(ch: &ClickHouseArgs) -> u64 {
    ch.client()
        .query("SELECT toUInt64(value) FROM system.events WHERE event = 'SelectQuery'")
        .fetch_one::<u64>()
        .await
        .unwrap()
}

#[derive(Default)]
struct Counts {
    bytes: AtomicU64,
    first_graph: AtomicU64,
    graphs: AtomicU64,
    deltas: AtomicU64,
    delta_bytes: AtomicU64,
    errors: AtomicU64,
}

/// Reads one stream until `stop`, counting bytes and events.
async fn read(url: String, counts: Arc<Counts>, stop: CancellationToken) {
    let mut r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut buf: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return,
            c = r.chunk() => match c { Ok(Some(c)) => c, _ => return },
        };
        counts
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.windows(2).position(|w| w == b"\n\n") {
            let ev: Vec<u8> = buf.drain(..i + 2).collect();
            let len = ev.len() as u64;
            if ev.starts_with(b"event: graph") {
                counts.graphs.fetch_add(1, Ordering::Relaxed);
                if first {
                    counts.first_graph.fetch_max(len, Ordering::Relaxed);
                    first = false;
                }
            } else if ev.starts_with(b"event: delta") {
                counts.deltas.fetch_add(1, Ordering::Relaxed);
                counts.delta_bytes.fetch_add(len, Ordering::Relaxed);
            } else if ev.starts_with(b"event: error")
                && counts.errors.fetch_add(1, Ordering::Relaxed) == 0
            {
                eprintln!(
                    "live_streams: an error event: {}",
                    String::from_utf8_lossy(&ev)
                );
            }
        }
    }
}

struct Phase {
    streams: u64,
    secs: f64,
    queries: u64,
    counts: Arc<Counts>,
}

async fn phase(ch: &ClickHouseArgs, url: &str, streams: u64, secs: u64, overhead: u64) -> Phase {
    let counts = Arc::new(Counts::default());
    let stop = CancellationToken::new();
    let q0 = selects(ch).await;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        tasks.push(tokio::spawn(read(url.into(), counts.clone(), stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let q1 = selects(ch).await;
    Phase {
        streams,
        secs: elapsed,
        queries: (q1 - q0).saturating_sub(2 * overhead),
        counts,
    }
}

#[tokio::main]
async fn main() {
    let services = env("ORRERY_BENCH_SERVICES", 300);
    let secs = env("ORRERY_BENCH_SECS", 60);
    let streams = env("ORRERY_BENCH_STREAMS", 100);
    let interval = env("ORRERY_BENCH_INTERVAL", 5);
    let ch = fresh_database().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let args = QueryArgs {
        query_addr: addr,
        api_token: None,
        ui_dir: "/nonexistent".into(),
        // The rollup job's own queries would blur the streams' count: off (the graph then reads
        // the window from spans, the same for both phases).
        graph: GraphArgs {
            graph_no_rollup: true,
            ..GraphArgs::default()
        },
        limits: orrery_query::limits::LimitArgs {
            query_max_streams: streams as usize + 10,
            ..Default::default()
        },
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(orrery_query::serve(
        listener,
        args,
        ch.clone(),
        shutdown.clone(),
    ));
    // Traffic: one batch per second in the background, two minutes of history first.
    let next_trace = Arc::new(AtomicU64::new(1));
    for s in 0..3 {
        insert(&ch, &batch(services, s, &next_trace)).await;
    }
    let writer = {
        let (ch, next_trace, stop) = (ch.clone(), next_trace.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut second = 3;
            while !stop.is_cancelled() {
                insert(&ch, &batch(services, second, &next_trace)).await;
                second += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let overhead = {
        let a = selects(&ch).await;
        selects(&ch).await - a
    };
    let url = format!("http://{addr}/orrery/api/graph/stream?since=15m&interval={interval}s");
    let rps = services * 2 * 2 * 3;
    println!(
        "live_streams: {services} services, {} edges, ~{rps} spans/s written, interval {interval}s, \
         {secs} s per phase",
        services * 2
    );
    let one = phase(&ch, &url, 1, secs, overhead).await;
    let many = phase(&ch, &url, streams, secs, overhead).await;
    shutdown.cancel();
    let _ = writer.await;
    let per_min = |x: u64, p: &Phase| x as f64 * 60.0 / p.secs;
    println!(
        "{:>8} {:>16} {:>16} {:>20} {:>14} {:>12} {:>12} {:>14}",
        "streams",
        "queries/min",
        "bytes/min",
        "bytes/min/stream",
        "first graph B",
        "graphs",
        "deltas",
        "mean delta B"
    );
    for p in [&one, &many] {
        let c = &p.counts;
        let deltas = c.deltas.load(Ordering::Relaxed);
        println!(
            "{:>8} {:>16.1} {:>16.0} {:>20.0} {:>14} {:>12} {:>12} {:>14.0}",
            p.streams,
            per_min(p.queries, p),
            per_min(c.bytes.load(Ordering::Relaxed), p),
            per_min(c.bytes.load(Ordering::Relaxed), p) / p.streams as f64,
            c.first_graph.load(Ordering::Relaxed),
            c.graphs.load(Ordering::Relaxed),
            deltas,
            c.delta_bytes.load(Ordering::Relaxed) as f64 / deltas.max(1) as f64,
        );
    }
    // The target: queries equal; each stream's bytes within 2x of one stream's first graph
    // plus its deltas (what phase 1's single stream received, per minute).
    let one_per_min = per_min(one.counts.bytes.load(Ordering::Relaxed), &one);
    let many_per_stream =
        per_min(many.counts.bytes.load(Ordering::Relaxed), &many) / many.streams as f64;
    let first = one.counts.first_graph.load(Ordering::Relaxed) as f64;
    println!(
        "before deltas (the full graph every tick), per stream: {:.0} bytes/min",
        first * 60.0 / interval as f64
    );
    println!(
        "queries/min {streams} streams / 1 stream: {:.2}; bytes/min per stream ({streams}) / 1 stream: {:.2}",
        per_min(many.queries, &many) / per_min(one.queries, &one).max(1e-9),
        many_per_stream / one_per_min.max(1e-9)
    );
}
