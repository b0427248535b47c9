//! End-to-end ingest benchmark (issue 3). Prints figures; records nothing by itself.
//!
//!   cargo bench -p orrery-collector --bench ingest [-- --spans 1000000 --clients 4]
//!
//! 1. Raw limit: the same rows inserted straight into the embedded ClickHouse (RowBinary bytes
//!    encoded beforehand, sent through the `clickhouse` crate, 250k-row inserts, 2 streams —
//!    the collector's sink shape under load, without the collector).
//! 2. End to end: this binary re-runs itself as a collector process (so its CPU and RSS are
//!    its own) against a fresh database; `--clients` concurrent OTLP/HTTP protobuf senders
//!    post 1,000-span requests of realistic spans (5 services, 10 attributes, 20% with an
//!    event; every request distinct, ids random-looking, the raw insert's rows among them);
//!    the clock stops when ClickHouse holds every span. Spool and batch flags given to the
//!    bench (e.g. `--spool-fsync=always`) are passed to the collector.
//!
//! Reported: spans/s both ways and their ratio, collector CPU-seconds per million spans, peak
//! RSS, p50/p99 request latency, bytes on disk per span.

use std::time::{Duration, Instant};

use clap::Parser;
use orrery_collector::{CollectorArgs, row, rowbinary, synth};
use orrery_store::testing::TestServer;
use orrery_store::{ClickHouseArgs, SPANS_TABLE, TRACE_ID_TS_TABLE};
use prost::Message;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Opts {
    /// Spans sent end to end.
    #[arg(long, default_value_t = 1_000_000)]
    spans: usize,
    /// Concurrent HTTP senders.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Rows for the raw-limit measurement [default: --spans, the same rows as end to end].
    #[arg(long)]
    raw_spans: Option<usize>,
    /// Rows per raw insert (about the collector's batch bound; 1M rows = 4 inserts, 2 a stream).
    #[arg(long, default_value_t = 250_000)]
    raw_batch: usize,
    /// Concurrent raw insert streams.
    #[arg(long, default_value_t = 2)]
    raw_streams: usize,
    /// A ClickHouse setting for the raw inserts, `name=value` (repeatable).
    #[arg(long)]
    raw_setting: Vec<String>,
    /// What the raw table is stripped of (repeatable; a throwaway database): `indexes` (the
    /// five bloom filters and the minmax), `view` (the trace-id lookup materialized view),
    /// `zstd` (every column LZ4 instead of ZSTD(1)). Finds what limits the engine.
    #[arg(long)]
    raw_strip: Vec<String>,
    /// Measure only the raw limit.
    #[arg(long)]
    raw_only: bool,
    /// Measure only the receiver's conversion (protobuf → spool record) on one core.
    #[arg(long)]
    convert_only: bool,
    /// Internal: run as the collector process.
    #[arg(long, hide = true)]
    serve: Option<String>,
    #[command(flatten)]
    collector: CollectorArgs,
    /// cargo bench passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

// The same allocator as the `orrery` binary (glibc malloc spent ~40% of the collector's CPU).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PER_REQUEST: usize = 1000;
const DISTINCT: usize = 100;

#[tokio::main]
async fn main() {
    let opts = Opts::parse();
    if let Some(url_db) = &opts.serve {
        let (url, db) = url_db.split_once('#').unwrap();
        let ch = ClickHouseArgs::for_url(url, db);
        orrery_collector::run(opts.collector, ch, shutdown_on_term())
            .await
            .unwrap();
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores; load average before: {}",
        num_cpus(),
        load.trim()
    );
    let server = TestServer::start();
    let now = synth::now_ns();
    // Every request distinct, random-looking ids: resent bodies would compress unrealistically
    // well. The raw insert below uses the same rows (the same seeds).
    let n_requests = (opts.spans / PER_REQUEST).max(DISTINCT);
    let bodies: Vec<bytes::Bytes> = (0..n_requests as u64)
        .map(|seed| {
            let mut req = synth::request(seed, PER_REQUEST, now);
            synth::scramble_ids(&mut req);
            req.encode_to_vec().into()
        })
        .collect();
    let avg_body = bodies.iter().map(|b| b.len()).sum::<usize>() / bodies.len();
    println!(
        "request: {PER_REQUEST} spans, {avg_body} bytes protobuf ({} bytes/span)",
        avg_body / PER_REQUEST
    );

    // 0. The receiver's conversion alone, single-threaded.
    let limits = orrery_collector::convert::Limits::default();
    let rounds = 20;
    let started = Instant::now();
    let mut out_bytes = 0;
    for _ in 0..rounds {
        for body in &bodies[..DISTINCT] {
            let t = orrery_collector::transcode::transcode(body, &limits)
                .expect("the fast path takes the bench's requests")
                .unwrap();
            out_bytes += t.record.len();
        }
    }
    let per_span = started.elapsed().as_secs_f64() / (rounds * DISTINCT * PER_REQUEST) as f64;
    println!(
        "conversion (protobuf → RowBinary record, one thread): {:.0} ns/span, {} bytes/span out",
        per_span * 1e9,
        out_bytes / (rounds * DISTINCT * PER_REQUEST)
    );
    if opts.convert_only {
        return;
    }

    // 1. Raw insert rate.
    let raw_ch = server.fresh_database().await;
    let per_insert = opts.raw_batch / PER_REQUEST;
    let raw_total =
        opts.spans.min(opts.raw_spans.unwrap_or(opts.spans)) / opts.raw_batch * opts.raw_batch;
    for strip in &opts.raw_strip {
        let statements: Vec<String> = match strip.as_str() {
            "indexes" => [
                "idx_trace_id",
                "idx_res_attr_key",
                "idx_res_attr_value",
                "idx_span_attr_key",
                "idx_span_attr_value",
                "idx_duration",
            ]
            .iter()
            .map(|i| format!("ALTER TABLE {SPANS_TABLE} DROP INDEX {i}"))
            .collect(),
            "view" => vec![format!("DROP VIEW {TRACE_ID_TS_TABLE}_mv")],
            "zstd" => {
                let columns: Vec<(String, String)> = raw_ch
                    .client()
                    .query("SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = ?")
                    .bind(SPANS_TABLE)
                    .fetch_all()
                    .await
                    .unwrap();
                columns
                    .into_iter()
                    .map(|(n, t)| {
                        format!("ALTER TABLE {SPANS_TABLE} MODIFY COLUMN `{n}` {t} CODEC(LZ4)")
                    })
                    .collect()
            }
            other => panic!("--raw-strip {other}: indexes, view or zstd"),
        };
        for sql in statements {
            raw_ch.client().query(&sql).execute().await.unwrap();
        }
    }
    // One body per insert, encoded beforehand: only the insert itself is timed.
    let batches: Vec<bytes::Bytes> = (0..raw_total / opts.raw_batch)
        .map(|b| {
            let mut body = Vec::new();
            for r in 0..per_insert {
                let seed = (b * per_insert + r) as u64;
                let mut req = synth::request(seed, PER_REQUEST, now);
                synth::scramble_ids(&mut req);
                rowbinary::encode(
                    &req,
                    orrery_collector::convert::Limits::default().max_attribute_len,
                    &mut body,
                );
            }
            body.into()
        })
        .collect();
    println!(
        "raw insert body: {} bytes RowBinary per span",
        batches[0].len() / opts.raw_batch
    );
    let started = Instant::now();
    let streams: Vec<_> = (0..opts.raw_streams)
        .map(|k| {
            let client = raw_ch.client();
            let settings: Vec<(String, String)> = opts
                .raw_setting
                .iter()
                .map(|s| s.split_once('=').expect("--raw-setting name=value"))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mine: Vec<bytes::Bytes> = batches
                .iter()
                .skip(k)
                .step_by(opts.raw_streams)
                .cloned()
                .collect();
            tokio::spawn(async move {
                for body in mine {
                    let mut insert = client.insert_formatted_with(row::insert_sql());
                    for (k, v) in &settings {
                        insert = insert.with_setting(k, v);
                    }
                    insert.send(body).await.unwrap();
                    insert.end().await.unwrap();
                }
            })
        })
        .collect();
    for s in streams {
        s.await.unwrap();
    }
    let raw_secs = started.elapsed().as_secs_f64();
    let raw_rate = raw_total as f64 / raw_secs;
    println!(
        "raw insert: {raw_total} rows in {raw_secs:.2} s = {raw_rate:.0} rows/s ({} rows an insert, {} streams{})",
        opts.raw_batch,
        opts.raw_streams,
        opts.raw_setting
            .iter()
            .chain(opts.raw_strip.iter().map(|s| s as &String))
            .map(|s| format!(", {s}"))
            .collect::<String>()
    );
    report_disk("on disk, unique spans (raw table)", &raw_ch).await;
    if opts.raw_only {
        return;
    }

    // 2. End to end through a collector process.
    let ch = server.fresh_database().await;
    let spool = tempfile::tempdir().unwrap();
    let port = orrery_store::testing::process::free_port();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(format!("--serve={}#{}", server.url, ch.clickhouse_database))
        .arg(format!("--otlp-http-addr=127.0.0.1:{port}"))
        .arg(format!(
            "--otlp-grpc-addr=127.0.0.1:{}",
            orrery_store::testing::process::free_port()
        ))
        .arg(format!("--spool-dir={}", spool.path().display()))
        // Spool and batch flags given to the bench go to the collector.
        .args(std::env::args().filter(|a| a.starts_with("--spool-") || a.starts_with("--batch-")))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..opts.clients)
        .map(|_| {
            let (http, base, bodies, next) =
                (http.clone(), base.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n_requests {
                        return latencies;
                    }
                    loop {
                        let t = Instant::now();
                        let r = http
                            .post(format!("{base}/v1/traces"))
                            .header("content-type", "application/x-protobuf")
                            .body(bodies[i].clone())
                            .send()
                            .await
                            .unwrap();
                        if r.status().is_success() {
                            latencies.push(t.elapsed());
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for s in senders {
        latencies.extend(s.await.unwrap());
    }
    let accepted_secs = started.elapsed().as_secs_f64();
    let total = (n_requests * PER_REQUEST) as u64;
    let mut peak_rss = 0;
    loop {
        peak_rss = peak_rss.max(rss_kib(pid));
        let n: u64 = ch
            .client()
            .query(&format!("SELECT count() FROM {SPANS_TABLE}"))
            .fetch_one()
            .await
            .unwrap();
        if n >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e2e_secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    peak_rss = peak_rss.max(hwm_kib(pid));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let e2e_rate = total as f64 / e2e_secs;
    println!(
        "end to end: {total} spans accepted in {accepted_secs:.2} s, all in ClickHouse after {e2e_secs:.2} s = {e2e_rate:.0} spans/s ({:.0}% of raw)",
        100.0 * e2e_rate / raw_rate
    );
    println!(
        "collector process: {cpu:.2} CPU-s = {:.2} CPU-s per million spans; peak RSS {} MiB",
        cpu / (total as f64 / 1e6),
        peak_rss / 1024
    );
    println!(
        "request latency ({} requests of {PER_REQUEST} spans, {} clients): p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        opts.clients,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    report_disk("on disk, end-to-end table", &ch).await;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after: {}", load.trim());
}

async fn report_disk(what: &str, ch: &ClickHouseArgs) {
    let _ = ch
        .client()
        .query(&format!("OPTIMIZE TABLE {SPANS_TABLE} FINAL"))
        .execute()
        .await;
    let (bytes, rows): (u64, u64) = ch
        .client()
        .query("SELECT sum(bytes_on_disk), sum(rows) FROM system.parts WHERE database = currentDatabase() AND table = ? AND active")
        .bind(SPANS_TABLE)
        .fetch_one()
        .await
        .unwrap();
    println!(
        "{what}: {bytes} bytes for {rows} spans = {:.1} bytes/span",
        bytes as f64 / rows.max(1) as f64
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn hwm_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn shutdown_on_term() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
        t.cancel();
    });
    token
}
