//! Shared by the browser tests: the real `orrery all-in-one` on free ports serving web/dist,
//! curl helpers, and the node/puppeteer runner.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use orrery_store::testing::process::free_port;
use orrery_store::testing::process::orrery_command;

pub struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn dist() -> PathBuf {
    let dist = root().join("web/dist");
    assert!(
        dist.join("index.html").exists() && dist.join("orrery_web_bg.wasm").exists(),
        "web/dist is missing: run scripts/build-web.sh first"
    );
    dist
}

/// Starts all-in-one; returns the process guard, the UI/API base URL and the OTLP/HTTP URL.
pub fn start_orrery(data: &Path) -> (Running, String, String) {
    let (http, query) = (free_port(), free_port());
    let running = Running(
        orrery_command(env!("CARGO_BIN_EXE_orrery"))
            .arg("all-in-one")
            .arg("--data-dir")
            .arg(data)
            .args(["--embedded-port", "0"])
            .args(["--otlp-grpc-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--otlp-http-addr", &format!("127.0.0.1:{http}")])
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
    (running, base, format!("http://127.0.0.1:{http}/v1/traces"))
}

/// POSTs an OTLP/JSON body (retrying while the collector starts).
pub fn post_otlp(url: &str, body: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let data = format!("@{}", file.path().display());
    let deadline = Instant::now() + Duration::from_secs(60);
    while curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &data,
        url,
    ])
    .is_none()
    {
        assert!(Instant::now() < deadline, "collector did not accept OTLP");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs web/tests/browser.mjs in `mode`; returns its JSON report.
pub fn browser(mode: &str, target: &str, opts: &serde_json::Value) -> serde_json::Value {
    let out = Command::new("node")
        .arg(root().join("web/tests/browser.mjs"))
        .arg(mode)
        .arg(target)
        .arg(root().join("artifacts/web"))
        .arg(opts.to_string())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON")
}

/// Spans in the big trace of web_big_trace and benches/big_trace.rs.
pub const BIG_TRACE_SPANS: usize = 50_000;

/// Sends a deterministic `spans`-span trace over OTLP/HTTP JSON (batches of 2,500, one service
/// per batch) and waits until the API returns all of it; returns the trace id.
pub fn load_big_trace(base: &str, otlp: &str, spans: usize) -> String {
    let trace = "00000000000000000000000000b16b16".to_string();
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 120_000_000_000;
    for from in (0..spans).step_by(2_500) {
        post_otlp(
            otlp,
            &big_trace_batch(&trace, from, (from + 2_500).min(spans), t0),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let t = curl(&[&format!("{base}/orrery/api/traces/{trace}")]).unwrap_or_default();
        if t.contains(&format!("\"span_count\":{spans}")) {
            return trace;
        }
        assert!(
            Instant::now() < deadline,
            "the trace never had {spans} spans"
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
}

/// Spans `from..to` of the big trace; span i's parent is a function of i alone, so the shape
/// does not depend on batching.
fn big_trace_batch(trace: &str, from: usize, to: usize, t0: u64) -> String {
    let spans: Vec<_> = (from..to)
        .map(|i| {
            let parent = if i == 0 {
                String::new()
            } else {
                format!("{:016x}", 1 + (i * 7919 % i) as u64)
            };
            let start = t0 + (i as u64) * 1_000;
            serde_json::json!({
                "traceId": trace, "spanId": format!("{:016x}", i as u64 + 1), "parentSpanId": parent,
                "name": format!("op-{}", i % 41), "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 500_000 + (i as u64 % 97) * 10_000).to_string(),
                "status": {"code": if i % 101 == 0 { 2 } else { 1 }},
            })
        })
        .collect();
    let svc = format!("svc-{}", from / 2_500);
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
        "scopeSpans": [{"scope": {"name": "big-trace"}, "spans": spans}],
    }]})
    .to_string()
}

/// The big trace's browser figures (web/tests/e2e.mjs `bigtrace`): open time, phase timings,
/// model and DOM row counts, scroll steps.
pub fn open_big_trace(base: &str, trace: &str, spans: usize) -> serde_json::Value {
    browser(
        "bigtrace",
        base,
        &serde_json::json!({ "trace": trace, "spans": spans }),
    )
}
