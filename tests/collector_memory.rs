//! The collector's memory bound under load (issue 12): 100 concurrent 16 MiB requests while
//! ClickHouse is down, against the real `orrery collector` process; prints its peak RSS.
//! A measurement, not an assertion of speed: run with
//! `cargo test --test collector_memory -- --ignored --nocapture` and record the figure in
//! docs/benchmarks.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orrery_collector::synth;
use orrery_store::testing::process::{free_port, rss_kib};
use prost::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run explicitly (see the module docs)"]
async fn peak_rss_with_100_concurrent_16_mib_requests_and_clickhouse_down() {
    let spool = tempfile::tempdir().unwrap();
    let (http_port, grpc_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("collector")
        .arg("--no-migrate")
        .arg("--clickhouse-url=http://127.0.0.1:1")
        .arg(format!("--otlp-http-addr=127.0.0.1:{http_port}"))
        .arg(format!("--otlp-grpc-addr=127.0.0.1:{grpc_port}"))
        .arg(format!("--spool-dir={}", spool.path().display()))
        // Keep the disk use of the run small; the spool pushes back once it holds this much.
        .arg("--spool-max-bytes=268435456")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start orrery collector");
    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "collector did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A valid request just under the 16 MiB limit, shared by every sender (no copies here).
    let mut spans = 44_000;
    let body = loop {
        let b = synth::request(1, spans, synth::now_ns()).encode_to_vec();
        if b.len() <= 16 << 20 {
            break b;
        }
        spans -= 1_000;
    };
    let size = body.len();
    let body = prost::bytes::Bytes::from(body);
    let (idle, _) = rss_kib(child.id());
    let started = Instant::now();
    let sends = (0..100).map(|_| {
        let (http, base, body) = (http.clone(), base.clone(), body.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    });
    let mut statuses = std::collections::BTreeMap::new();
    for s in futures::future::join_all(sends).await {
        *statuses.entry(s.unwrap()).or_insert(0) += 1;
    }
    let took = started.elapsed();
    let (rss, peak) = rss_kib(child.id());
    println!(
        "100 concurrent requests of {:.1} MiB ({spans} spans), ClickHouse down: statuses {statuses:?} in {took:.1?}; \
         collector RSS idle {} MiB, after {} MiB, peak {} MiB",
        size as f64 / (1 << 20) as f64,
        idle / 1024,
        rss / 1024,
        peak / 1024
    );
    let _ = child.kill();
    let _ = child.wait();
    // The bound the docs state: well inside the 1 GiB Kubernetes limit.
    assert!(peak < 768 * 1024, "peak RSS {} MiB", peak / 1024);
}
