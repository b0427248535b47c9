//! The map at 2,000 real services, end to end (issue 18 item 5): `orrery mesh --services 2000
//! --regions 1` (one namespace, ~5,000 edges) sends through the real collector into the
//! all-in-one (embedded ClickHouse) and keeps sending while headless Chromium opens the region
//! map. Prints: the graph API's latency (curl, 5 requests: p50 and max) and JSON size; the UI's
//! navigation → first drawn frame; its legibility (node box share of the canvas, closest
//! centres vs largest node, labels shown and overlapping); over 15 s of live updates the graph
//! updates applied, fps, where WebGL runs (the renderer's worker, or the page's thread), renderer
//! frame CPU (p50/p95/max), main-thread busy time per frame, long tasks (> 50 ms: jank), particles drawn; where the time goes — the app's User Timing
//! entries (web/src/map/perf.rs) up to the first frame (fetch or stream decode, layout, scene,
//! upload, first GL draw) and their count/total/max during the live phase; the steps in which
//! the lists beside the map followed the updates (rows each, longest); and the tab's
//! memory (JS heap, wasm linear memory, DOM nodes, renderer RSS). Writes
//! docs/images/map-mesh-2000.png. Figures only: no time limit is asserted.
//!
//! `cargo bench --bench map_mesh` (needs `bash scripts/build-web.sh`). Optional:
//! ORRERY_BENCH_MESH_SERVICES (2000), ORRERY_BENCH_MESH_RATE (spans/s, 15000),
//! ORRERY_BENCH_MESH_WARMUP (seconds of sending before measuring, 90).

#[path = "../tests/web_support/mod.rs"]
mod web_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use web_support::*;

fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// One `GET` as curl sees it: (seconds, bytes, seconds to the first byte).
fn timed_get(url: &str) -> (f64, f64, f64) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total} %{size_download} %{time_starttransfer}",
            url,
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or(f64::NAN));
    let mut next = || it.next().unwrap_or(f64::NAN);
    (next(), next(), next())
}

fn main() {
    let services = env("ORRERY_BENCH_MESH_SERVICES", 2000);
    let rate = env("ORRERY_BENCH_MESH_RATE", 15_000);
    let warmup = env("ORRERY_BENCH_MESH_WARMUP", 90);
    let dir = tempfile::tempdir().unwrap();
    let (query, grpc) = (free_port(), free_port());
    let _orrery = Running(
        orrery_store::testing::process::orrery_command(env!("CARGO_BIN_EXE_orrery"))
            .arg("all-in-one")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--embedded-port", "0"])
            .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--query-addr", &format!("127.0.0.1:{query}")])
            .arg("--ui-dir")
            .arg(dist())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{query}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while curl(&[&format!("{base}/orrery/api/health")]).is_none() {
        assert!(Instant::now() < deadline, "query API did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Sends until killed: the map gets live updates while it is measured.
    let _mesh = Running(
        orrery_store::testing::process::orrery_command(env!("CARGO_BIN_EXE_orrery"))
            .args(["mesh", "--endpoint", &format!("http://127.0.0.1:{grpc}")])
            .args(["--services", &services.to_string(), "--regions", "1"])
            .args(["--rate", &rate.to_string(), "--duration", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("{base}/orrery/api/graph?level=region&since=15m&region=us-east-1");
    let started = Instant::now();
    let mut last = serde_json::Value::Null;
    while started.elapsed() < Duration::from_secs(warmup) {
        std::thread::sleep(Duration::from_secs(5));
        if let Some(g) = curl(&[&url]).and_then(|b| serde_json::from_str(&b).ok()) {
            last = g;
        }
    }
    let count = |k: &str| last[k].as_array().map_or(0, |a| a.len());
    println!(
        "after {warmup} s at {rate} spans/s: {} nodes, {} edges in the region graph",
        count("nodes"),
        count("edges")
    );
    let mut times: Vec<f64> = Vec::new();
    let mut firsts: Vec<f64> = Vec::new();
    let mut bytes = 0.0;
    for _ in 0..5 {
        let (t, b, first) = timed_get(&url);
        times.push(t * 1000.0);
        firsts.push(first * 1000.0);
        bytes = b;
    }
    times.sort_by(f64::total_cmp);
    firsts.sort_by(f64::total_cmp);
    // Time to the first byte against the whole: the graph is computed before the answer starts.
    println!(
        "graph API (level=region, {} nodes / {} edges): p50 {:.0} ms (first byte {:.0} ms), max {:.0} ms, {:.2} MB JSON",
        count("nodes"),
        count("edges"),
        times[2],
        firsts[2],
        times[4],
        bytes / 1e6
    );
    let v = browser(
        "mesh",
        &base,
        &serde_json::json!({
            "name": format!("{services}"),
            "region": "us-east-1",
            "min_nodes": count("nodes") * 9 / 10,
            "watch_ms": 15000,
            "docs_images": root().join("docs/images").display().to_string(),
            "docs_image": format!("map-mesh-{services}.png"),
        }),
    );
    let l = &v["legibility"];
    println!(
        "UI: navigation → first frame {} ms; nodes {} covering {:.0}% x {:.0}% of the {}x{} canvas; closest centres {:.1} px, largest node {:.1} px; {} labels, {} overlapping",
        v["first_frame_ms"],
        l["nodes"],
        l["bbox_share"]["w"].as_f64().unwrap_or(0.0) * 100.0,
        l["bbox_share"]["h"].as_f64().unwrap_or(0.0) * 100.0,
        l["viewport"]["w"],
        l["viewport"]["h"],
        l["min_centre_distance"].as_f64().unwrap_or(0.0),
        l["max_node_diameter"].as_f64().unwrap_or(0.0),
        l["labels"],
        l["label_overlaps"]
    );
    let p = &v["phases"];
    println!(
        "first frame, where the time went (ms after navigation): wasm loaded at {}, then [phase, start, duration]: {}",
        p["wasm_loaded"],
        serde_json::Value::Array(
            p["entries"]
                .as_array()
                .map(|e| {
                    // The empty frames' label passes before the graph are noise here.
                    e.iter()
                        .filter(|x| {
                            x[0] != "labels"
                                || x[1].as_f64() >= v["first_frame_ms"].as_f64().map(|f| f - 100.0)
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        )
    );
    // The first graph's path (web/static/main.js requests the stream before the module is
    // ready) and what Chromium itself took from the cores meanwhile (the server computing that
    // graph runs on the same machine).
    println!(
        "first graph's path: stream requested at {} ms ({} stream request(s) up to the first frame; module ready at {} ms), its first bytes at {} ms; Chromium CPU navigation → first frame (ms, by process): {}",
        v["stream"]["sent"],
        v["stream"]["requests"],
        p["wasm_ready"],
        v["stream"]["first_data"],
        v["browser_cpu_ms_to_first_frame"]
    );
    println!(
        "requests up to the first frame (ms after navigation: sent, headers, first bytes): {}",
        serde_json::Value::Array(
            p["network"]
                .as_array()
                .map(|n| {
                    n.iter()
                        .map(|q| {
                            serde_json::json!([q["url"], q["sent"], q["headers"], q["first_data"]])
                        })
                        .collect()
                })
                .unwrap_or_default()
        )
    );
    let live = &v["live"];
    println!(
        "live ({:.0} s): {} graph updates, {:.1} fps (WebGL on the {} thread; {} WebGL draw calls on the page's), {} long tasks (longest {} ms), renderer frame CPU {}, main thread {:.1} ms/frame",
        live["seconds"].as_f64().unwrap_or(0.0),
        live["graph_updates"],
        live["fps"].as_f64().unwrap_or(0.0),
        live["gl_thread"],
        live["page_thread_gl_draws"],
        live["long_tasks"],
        live["longest_task_ms"],
        live["renderer_frame_cpu"],
        live["main_thread_ms_per_frame"].as_f64().unwrap_or(0.0)
    );
    println!("live phases (count, total, max ms): {}", live["phases"]);
    println!(
        "long tasks (ms): {}; by what ran in them: {}; began ms after the last update applied: {}",
        live["long_task_ms"], live["long_tasks_by_cause"], live["long_task_after_update_ms"]
    );
    // The lists beside the map follow each update in steps of at most 25 rows, a task each.
    println!(
        "lists' steps (count, rows, most rows, longest ms; whole page / live phase): {}",
        v["list_chunks"]
    );
    println!("memory: {}", v["memory"]);
    println!("page log: {}", v["log"]);
    let out = Command::new("uptime").output().unwrap();
    println!("uptime: {}", String::from_utf8_lossy(&out.stdout).trim());
}
