//! Real OpenTelemetry clients nobody here wrote (the official Python SDK over gRPC and
//! HTTP/protobuf, the official Node SDK over HTTP/JSON) send spans to the collector; every field
//! they say they exported must land in ClickHouse exactly, once.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

async fn check(ch: &orrery_store::ClickHouseArgs, service: &str, stdout: &str) {
    let want = expected_rows(stdout);
    assert!(!want.is_empty(), "client printed no spans");
    let n = wait_count(
        ch,
        &format!("ServiceName = '{service}'"),
        want.len() as u64,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(n, want.len() as u64, "stored span count");
    let got = rows(ch, service).await;
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "span {} differs", w.span_id);
    }
    assert_eq!(got.len(), want.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_and_http_protobuf_lands_exactly() {
    let ch = orrery_store::testing::fresh_database().await;
    let spool = tempfile::tempdir().unwrap();
    let c = Collector::start(&ch, spool.path(), &[]).await;
    let script = repo().join("tests/clients/otel_python_send.py");
    for (proto, endpoint) in [("grpc", c.grpc.clone()), ("http", c.http.clone())] {
        let mut cmd = Command::new(python());
        cmd.arg(&script).arg(proto).arg(&endpoint).arg("25");
        let stdout = run_client(cmd).await;
        check(&ch, &format!("py-{proto}-checkout"), &stdout).await;
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_over_http_json_lands_exactly() {
    let ch = orrery_store::testing::fresh_database().await;
    let spool = tempfile::tempdir().unwrap();
    let c = Collector::start(&ch, spool.path(), &[]).await;
    let dir = repo().join("tests/clients");
    assert!(
        dir.join("node_modules/@opentelemetry/exporter-trace-otlp-http")
            .exists(),
        "run scripts/install.sh (npm install in tests/clients)"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir).arg("otel_node_send.js").arg(&c.http);
    let stdout = run_client(cmd).await;
    check(&ch, "node-frontend", &stdout).await;
    c.stop().await;
}
