//! Throughput with 1, 2 and 3 `orrery collector` processes in front of one
//! `orrery embedded-clickhouse`, fed by `orrery mesh` round-robin over all collectors as fast as
//! they accept; memory and CPU per process; storage bytes per span.
//!
//! `cargo bench --bench scale_out` (release build). Optional: ORRERY_BENCH_SECONDS (default 20),
//! ORRERY_BENCH_COLLECTORS (default "1,2,3").
//!
//! Figures per run: accepted spans/s (acknowledged by the collectors, i.e. spooled), end-to-end
//! spans/s (all accepted spans counted in ClickHouse, from the first request to the last row),
//! peak RSS per collector, CPU seconds per million spans for the collectors, the engine and the
//! generator, ClickHouse rows/s per engine core, and compressed bytes per span on disk.

#[path = "../tests/deploy_support/mod.rs"]
mod deploy_support;

use std::time::{Duration, Instant};

use deploy_support::*;

struct Figures {
    collectors: usize,
    accepted: u64,
    accepted_per_sec: f64,
    stored_per_sec: f64,
    collector_rss_mib: Vec<f64>,
    collector_cpu_per_m: f64,
    engine_cpu_per_m: f64,
    mesh_cpu_per_m: f64,
    engine_rows_per_core_sec: f64,
    bytes_per_span: f64,
    failed_exports: u64,
    /// Whole machine, busy cores during the run (of `available_parallelism`).
    machine_busy_cores: f64,
    /// Busy cores used by processes other than this run's (other builds, tests).
    other_busy_cores: f64,
}

/// Busy CPU seconds of the whole machine so far (all cores; /proc/stat, USER_HZ = 100).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0.0) + f.get(4).copied().unwrap_or(0.0);
    (total - idle) / 100.0
}

fn engine_pids(engine: &Engine) -> Vec<u32> {
    let mut pids = vec![engine.proc.pid()];
    pids.extend(children(engine.proc.pid()));
    pids
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

fn run(n: usize, seconds: u64) -> Figures {
    let engine = start_engine();
    migrate(&engine.url, "bench");
    let spools = tempfile::tempdir().unwrap();
    let collectors: Vec<Collector> = (0..n)
        .map(|i| start_collector(&engine.url, "bench", &spools.path().join(format!("c{i}"))))
        .collect();
    let endpoints: Vec<String> = collectors.iter().map(Collector::grpc_endpoint).collect();
    let engine_procs = engine_pids(&engine);
    let collector_cpu0 = cpu(&collectors.iter().map(|c| c.proc.pid()).collect::<Vec<_>>());
    let engine_cpu0 = cpu(&engine_procs);

    let report_file = spools.path().join("mesh.json");
    let machine0 = machine_busy_seconds();
    let started = Instant::now();
    let mesh = orrery()
        .arg("mesh")
        .args(["--endpoint", &endpoints.join(",")])
        .args(["--services", "300", "--batch", "1000", "--concurrency", "8"])
        .args(["--rate", "2000000"])
        .args(["--duration", &format!("{seconds}s")])
        .arg("--report")
        .arg(&report_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mesh_pid = mesh.id();
    // Sample the generator's CPU while it lives (it is gone once its output is collected).
    let mut mesh_cpu = 0.0;
    let mut mesh = mesh;
    while mesh.try_wait().unwrap().is_none() {
        mesh_cpu = cpu_seconds(mesh_pid).max(mesh_cpu);
        std::thread::sleep(Duration::from_millis(200));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).expect("mesh report");
    let accepted = report["spans"].as_u64().unwrap();
    let accepted_secs = report["elapsed_secs"].as_f64().unwrap();

    // End to end: until every accepted span is counted in ClickHouse.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stored: u64 = sql(
            &engine.url,
            "SELECT count() FROM bench.otel_traces FORMAT TSV",
        )
        .parse()
        .unwrap();
        if stored >= accepted {
            break;
        }
        assert!(Instant::now() < deadline, "{stored} of {accepted} stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    let e2e = started.elapsed().as_secs_f64();
    let machine = machine_busy_seconds() - machine0;
    let collector_cpu =
        cpu(&collectors.iter().map(|c| c.proc.pid()).collect::<Vec<_>>()) - collector_cpu0;
    let engine_cpu = cpu(&engine_procs) - engine_cpu0;
    let bytes: f64 = sql(
        &engine.url,
        "SELECT sum(data_compressed_bytes) FROM system.parts \
         WHERE database = 'bench' AND table = 'otel_traces' AND active FORMAT TSV",
    )
    .parse()
    .unwrap();
    let m = accepted as f64 / 1e6;
    Figures {
        collectors: n,
        accepted,
        accepted_per_sec: accepted as f64 / accepted_secs,
        stored_per_sec: accepted as f64 / e2e,
        collector_rss_mib: collectors
            .iter()
            .map(|c| rss_kib(c.proc.pid()).1 as f64 / 1024.0)
            .collect(),
        collector_cpu_per_m: collector_cpu / m,
        engine_cpu_per_m: engine_cpu / m,
        mesh_cpu_per_m: mesh_cpu / m,
        engine_rows_per_core_sec: accepted as f64 / engine_cpu.max(1e-9),
        bytes_per_span: bytes / accepted as f64,
        failed_exports: report["failed_exports"].as_u64().unwrap_or(0),
        machine_busy_cores: machine / e2e,
        other_busy_cores: (machine - collector_cpu - engine_cpu - mesh_cpu).max(0.0) / e2e,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let seconds: u64 = std::env::var("ORRERY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let counts: Vec<usize> = std::env::var("ORRERY_BENCH_COLLECTORS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "scale-out: orrery mesh (300 services) → N collectors → one embedded ClickHouse, {seconds} s per run, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| collectors | spans accepted | accepted spans/s | end-to-end spans/s | peak RSS per collector (MiB) | collector CPU-s / M spans | engine CPU-s / M spans | generator CPU-s / M spans | engine rows/s per core | bytes/span on disk | failed exports | machine busy cores | of which other processes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in counts {
        let f = run(n, seconds);
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {} | {:.2} | {:.2} |",
            f.collectors,
            f.accepted,
            f.accepted_per_sec,
            f.stored_per_sec,
            f.collector_rss_mib
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            f.collector_cpu_per_m,
            f.engine_cpu_per_m,
            f.mesh_cpu_per_m,
            f.engine_rows_per_core_sec,
            f.bytes_per_span,
            f.failed_exports,
            f.machine_busy_cores,
            f.other_busy_cores,
        );
    }
}
