//! The real `orrery collector` process under faults: `kill -9` mid-stream then restart (every
//! acknowledged span stored, none twice), `kill -9` with everything still spooled (replayed at
//! the next start), and SIGTERM (stops accepting, flushes, exits).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orrery_collector::synth;
use orrery_store::ClickHouseArgs;
use prost::Message;

const PER_REQUEST: u64 = 200;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    child: Child,
    http: String,
}

fn spawn(ch: &ClickHouseArgs, spool: &Path, http_port: u16, extra: &[&str]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("collector")
        .arg("--no-migrate")
        .arg(format!(
            "--clickhouse-url={}",
            ch.clickhouse_url.as_deref().unwrap()
        ))
        .arg(format!("--clickhouse-database={}", ch.clickhouse_database))
        .arg(format!("--otlp-http-addr=127.0.0.1:{http_port}"))
        .arg(format!("--otlp-grpc-addr=127.0.0.1:{}", free_port()))
        .arg(format!("--spool-dir={}", spool.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start orrery collector");
    Proc {
        child,
        http: format!("http://127.0.0.1:{http_port}"),
    }
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "collector did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(http: &reqwest::Client, base: &str, seed: u64) -> bool {
    let body = synth::request(seed, PER_REQUEST as usize, synth::now_ns()).encode_to_vec();
    matches!(
        http.post(format!("{base}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await,
        Ok(r) if r.status().is_success()
    )
}

/// Stored spans per request seed (the seed is the span id's upper 40 bits).
async fn per_seed(ch: &ClickHouseArgs) -> HashMap<u64, u64> {
    let rows: Vec<(u64, u64)> = ch
        .client()
        .query(
            "SELECT intDiv(reinterpretAsUInt64(reverse(unhex(SpanId))), 16777216) AS seed, count() \
             FROM otel_traces GROUP BY seed",
        )
        .fetch_all()
        .await
        .unwrap();
    rows.into_iter().collect()
}

async fn total(ch: &ClickHouseArgs) -> (u64, u64) {
    ch.client()
        .query("SELECT count(), uniqExact(SpanId) FROM otel_traces")
        .fetch_one()
        .await
        .unwrap()
}

async fn wait_total(ch: &ClickHouseArgs, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (n, _) = total(ch).await;
        if n >= want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn segments(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            matches!(p.extension().and_then(|e| e.to_str()), Some("seg" | "open"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_nothing() {
    let ch = orrery_store::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let args = ["--batch-max-spans=600", "--batch-timeout=100ms"];
    let mut proc = spawn(&ch, &spool, port, &args);
    let http = reqwest::Client::new();
    wait_healthy(&http, &proc.http).await;

    // A client streams requests; a request whose connection broke is not acknowledged and
    // not resent (so only acknowledged requests have to be there, and nothing may be twice).
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let sender = {
        let (http, base, acked) = (http.clone(), proc.http.clone(), acked.clone());
        tokio::spawn(async move {
            for seed in 0..60 {
                if post(&http, &base, seed).await {
                    acked.lock().unwrap().push(seed);
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    };
    while acked.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proc.child.kill().unwrap(); // SIGKILL
    proc.child.wait().unwrap();
    let mut proc = spawn(&ch, &spool, port, &args);
    wait_healthy(&http, &proc.http).await;
    sender.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 25,
        "the stream resumed after the restart: {acked:?}"
    );

    let n = wait_total(&ch, acked.len() as u64 * PER_REQUEST).await;
    assert!(n >= acked.len() as u64 * PER_REQUEST, "stored {n}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = per_seed(&ch).await;
    for seed in &acked {
        assert_eq!(
            stored.get(seed),
            Some(&PER_REQUEST),
            "acknowledged request {seed}"
        );
    }
    for (seed, n) in &stored {
        assert_eq!(*n, PER_REQUEST, "request {seed} stored partially or twice");
    }
    let (count, unique) = total(&ch).await;
    assert_eq!(count, unique, "no span twice");
    proc.child.kill().unwrap();
    proc.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_spooled_at_kill_9_are_replayed_at_the_next_start() {
    let ch = orrery_store::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    // Nothing leaves the spool before the kill: the batch is neither full nor due.
    let mut proc = spawn(
        &ch,
        &spool,
        port,
        &["--batch-timeout=1h", "--batch-max-spans=1000000"],
    );
    let http = reqwest::Client::new();
    wait_healthy(&http, &proc.http).await;
    for seed in 0..5 {
        assert!(post(&http, &proc.http, seed).await);
    }
    proc.child.kill().unwrap();
    proc.child.wait().unwrap();
    assert_eq!(
        total(&ch).await.0,
        0,
        "nothing was inserted before the kill"
    );
    let mut proc = spawn(&ch, &spool, port, &["--batch-timeout=100ms"]);
    assert_eq!(wait_total(&ch, 5 * PER_REQUEST).await, 5 * PER_REQUEST);
    let (count, unique) = total(&ch).await;
    assert_eq!(count, unique);
    proc.child.kill().unwrap();
    proc.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_flushes_the_spool_and_exits() {
    let ch = orrery_store::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let mut proc = spawn(
        &ch,
        &spool,
        free_port(),
        &["--batch-timeout=1h", "--batch-max-spans=1000000"],
    );
    let http = reqwest::Client::new();
    wait_healthy(&http, &proc.http).await;
    for seed in 0..5 {
        assert!(post(&http, &proc.http, seed).await);
    }
    assert_eq!(total(&ch).await.0, 0, "still spooled");
    let status = Command::new("kill")
        .args(["-TERM", &proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || proc.child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "clean exit: {exit}");
    // Flushed before exiting: everything is there now, and the spool is empty.
    assert_eq!(total(&ch).await, (5 * PER_REQUEST, 5 * PER_REQUEST));
    assert_eq!(segments(&spool), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_of_a_collector_that_never_comes_back_is_drained_with_orrery_spool_replay_all() {
    let ch = orrery_store::testing::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Everything stays spooled (an open segment, as a kill -9 during an outage leaves it).
    let mut proc = spawn(
        &ch,
        &spool,
        free_port(),
        &["--batch-timeout=1h", "--batch-max-spans=1000000"],
    );
    let http = reqwest::Client::new();
    wait_healthy(&http, &proc.http).await;
    for seed in 0..4 {
        assert!(post(&http, &proc.http, seed).await);
    }
    proc.child.kill().unwrap();
    proc.child.wait().unwrap();
    assert_eq!(total(&ch).await.0, 0);
    let (spool_dir, ch2) = (spool.clone(), ch.clone());
    let replay = move |extra: &[&str]| {
        let (spool, ch) = (&spool_dir, &ch2);
        let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
            .args(["spool", "replay", "--all"])
            .arg(format!("--spool-dir={}", spool.display()))
            .arg(format!(
                "--clickhouse-url={}",
                ch.clickhouse_url.as_deref().unwrap()
            ))
            .arg(format!("--clickhouse-database={}", ch.clickhouse_database))
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = tokio::task::spawn_blocking(move || replay(&[]))
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{} spans inserted", 4 * PER_REQUEST)),
        "{out}"
    );
    assert_eq!(total(&ch).await, (4 * PER_REQUEST, 4 * PER_REQUEST));
    assert_eq!(segments(&spool), 0);
}
