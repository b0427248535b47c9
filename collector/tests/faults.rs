//! ClickHouse killed (`kill -9`) mid-stream: once it is back, every acknowledged span is
//! stored exactly once.

mod support;

use std::process::Command;
use std::time::Duration;

use orrery_collector::synth;
use orrery_store::ClickHouseArgs;
use orrery_store::embedded::{EmbeddedArgs, EmbeddedClickHouse};
use orrery_store::schema::{self, SchemaParams};
use prost::Message;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_killed_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = EmbeddedClickHouse::start(&EmbeddedArgs {
        data_dir: dir.path().join("clickhouse"),
        embedded_port: 0,
        chdb_python: orrery_store::testing::chdb_python(),
    })
    .await
    .expect("embedded ClickHouse starts");
    let ch = ClickHouseArgs::for_url(server.url(), "faults");
    schema::migrate(
        &ch.server_client(server.url()),
        &SchemaParams::from_args(&ch).unwrap(),
    )
    .await
    .unwrap();
    let c = Collector::start(&ch, &dir.path().join("spool"), &["--batch-max-spans=600"]).await;
    let http = reqwest::Client::new();
    let (requests, per_request) = (30u64, 200usize);
    let mut killed = None;
    for seed in 0..requests {
        if seed == 8 || seed == 20 {
            // The second kill waits for the supervisor to have restarted chDB after the first.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let pid = loop {
                match server.pid().await {
                    Some(pid) if Some(pid) != killed => break pid,
                    _ => {
                        assert!(std::time::Instant::now() < deadline, "chDB restarted");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            };
            killed = Some(pid);
            let status = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let body = synth::request(seed, per_request, synth::now_ns()).encode_to_vec();
        send_until_acked(&http, &c.http, body).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let acked = requests * per_request as u64;
    let n = wait_count(&ch, "1", acked, Duration::from_secs(180)).await;
    // Let any late retry land before checking there is no duplicate.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(n, acked, "every acknowledged span stored");
    assert_eq!(count_and_unique(&ch).await, (acked, acked), "none twice");
    let metrics = &c.running.as_ref().unwrap().metrics;
    assert!(
        metrics.batch_retries.get() > 0,
        "the kills interrupted inserts"
    );
    c.stop().await;
    server.stop().await;
}
