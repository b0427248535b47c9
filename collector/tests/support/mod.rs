//! Shared by the collector's integration tests: an in-process collector on free loopback ports
//! over a fresh database of the real embedded ClickHouse, and row comparison helpers.
#![allow(dead_code)]

pub mod fake;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use orrery_collector::{CollectorArgs, Running};
use orrery_store::{ClickHouseArgs, SPANS_TABLE, SpanRow};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: CollectorArgs,
}

/// Collector args on free loopback ports with a short batch timeout, plus `extra` flags.
pub fn args(spool: &Path, extra: &[&str]) -> CollectorArgs {
    let mut argv = vec![
        "collector".to_string(),
        "--otlp-grpc-addr=127.0.0.1:0".into(),
        "--otlp-http-addr=127.0.0.1:0".into(),
        format!("--spool-dir={}", spool.display()),
        "--batch-timeout=200ms".into(),
        "--batch-backoff-initial=50ms".into(),
        "--batch-backoff-max=500ms".into(),
    ];
    // A flag in `extra` replaces its default above.
    let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
    argv.retain(|a| !extra.iter().any(|e| flag(e) == flag(a)));
    argv.extend(extra.iter().map(|s| s.to_string()));
    Wrapper::parse_from(argv).args
}

pub struct Collector {
    pub running: Option<Running>,
    pub shutdown: CancellationToken,
    pub http: String,
    pub grpc: String,
    pub spool: PathBuf,
}

impl Collector {
    pub async fn start(ch: &ClickHouseArgs, spool: &Path, extra: &[&str]) -> Collector {
        let shutdown = CancellationToken::new();
        let running = orrery_collector::start(args(spool, extra), ch.clone(), shutdown.clone())
            .await
            .expect("collector starts");
        Collector {
            http: format!("http://{}", running.http_addr),
            grpc: running.grpc_addr.to_string(),
            running: Some(running),
            shutdown,
            spool: spool.to_path_buf(),
        }
    }

    /// SIGTERM-like stop: stop accepting, flush, return.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await.expect("collector stops cleanly");
        }
    }
}

/// Rows of one service, maps sorted by key, ordered by span id.
pub async fn rows(ch: &ClickHouseArgs, service: &str) -> Vec<SpanRow> {
    let mut rows: Vec<SpanRow> = ch
        .client()
        .query(&format!(
            "SELECT ?fields FROM {SPANS_TABLE} WHERE ServiceName = ? ORDER BY SpanId"
        ))
        .bind(service)
        .fetch_all()
        .await
        .expect("select rows");
    rows.iter_mut().for_each(normalize);
    rows
}

pub async fn count(ch: &ClickHouseArgs, sql_where: &str) -> u64 {
    ch.client()
        .query(&format!(
            "SELECT count() FROM {SPANS_TABLE} WHERE {sql_where}"
        ))
        .fetch_one()
        .await
        .expect("count")
}

/// Polls `count` until it reaches `want` (or the deadline), returning the last value.
pub async fn wait_count(ch: &ClickHouseArgs, sql_where: &str, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut n = 0;
    loop {
        // ClickHouse may be restarting in the fault tests: keep polling through errors.
        if let Ok(got) = ch
            .client()
            .query(&format!(
                "SELECT count() FROM {SPANS_TABLE} WHERE {sql_where}"
            ))
            .fetch_one::<u64>()
            .await
        {
            n = got;
        }
        if n >= want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn normalize(row: &mut SpanRow) {
    row.resource_attributes.sort();
    row.span_attributes.sort();
    row.events_attributes.iter_mut().for_each(|a| a.sort());
    row.links_attributes.iter_mut().for_each(|a| a.sort());
}

fn map(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .as_object()
        .expect("attribute object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
        .collect();
    out.sort();
    out
}

fn num(v: &serde_json::Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("number")
}

/// The row a client script says it exported (one JSON object per line on its stdout).
pub fn expected_rows(stdout: &str) -> Vec<SpanRow> {
    let mut rows: Vec<SpanRow> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("client JSON line");
            let s = |k: &str| v[k].as_str().expect(k).to_string();
            let mut row = SpanRow {
                timestamp: num(&v["timestamp"]),
                trace_id: s("trace_id"),
                span_id: s("span_id"),
                parent_span_id: s("parent_span_id"),
                trace_state: s("trace_state"),
                span_name: s("name"),
                span_kind: s("kind"),
                service_name: s("service"),
                resource_attributes: map(&v["resource"]),
                scope_name: s("scope_name"),
                scope_version: s("scope_version"),
                span_attributes: map(&v["attributes"]),
                duration: num(&v["duration"]) as u64,
                status_code: s("status_code"),
                status_message: s("status_message"),
                ..Default::default()
            };
            for e in v["events"].as_array().unwrap() {
                row.events_timestamp.push(num(&e[0]));
                row.events_name.push(e[1].as_str().unwrap().to_string());
                row.events_attributes.push(map(&e[2]));
            }
            for l in v["links"].as_array().unwrap() {
                row.links_trace_id.push(l[0].as_str().unwrap().to_string());
                row.links_span_id.push(l[1].as_str().unwrap().to_string());
                row.links_trace_state
                    .push(l[2].as_str().unwrap().to_string());
                row.links_attributes.push(map(&l[3]));
            }
            row
        })
        .collect();
    rows.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    rows
}

/// The repository root (for the client scripts and the venv).
pub fn repo() -> PathBuf {
    orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn python() -> PathBuf {
    orrery_store::testing::chdb_python()
}

/// Runs a command to completion off the async runtime; panics with its stderr on failure.
pub async fn run_client(mut cmd: std::process::Command) -> String {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("client starts"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// POSTs a protobuf request to `/v1/traces`; returns the status.
pub async fn post_protobuf(
    http: &reqwest::Client,
    base: &str,
    body: Vec<u8>,
) -> reqwest::StatusCode {
    match http
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status(),
        Err(_) => reqwest::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Sends `request` until it is acknowledged, retrying on push-back or connection errors (as
/// an OTLP exporter would). Panics on any other refusal.
pub async fn send_until_acked(http: &reqwest::Client, base: &str, body: Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = post_protobuf(http, base, body.clone()).await;
        if status.is_success() {
            return;
        }
        assert!(
            status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
            "unexpected status {status}"
        );
        assert!(Instant::now() < deadline, "not acknowledged within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `count()` and `uniqExact(SpanId)` of the spans table.
pub async fn count_and_unique(ch: &ClickHouseArgs) -> (u64, u64) {
    ch.client()
        .query(&format!(
            "SELECT count(), uniqExact(SpanId) FROM {SPANS_TABLE}"
        ))
        .fetch_one()
        .await
        .expect("count")
}
