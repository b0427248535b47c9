//! Shared by the browser tests: the real `orrery all-in-one` on free ports serving web/dist,
//! curl helpers, and the node/puppeteer runner.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod checks;
pub use orrery_store::testing::process::free_port;
use orrery_store::testing::process::orrery_command;

pub struct Running(pub Child);
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

pub fn root() -> PathBuf {
    orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"))
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
    start_orrery_with(data, &[])
}

/// `start_orrery` with extra flags (e.g. `--api-token`).
pub fn start_orrery_with(data: &Path, extra: &[&str]) -> (Running, String, String) {
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
            .args(extra)
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
    post_otlp_with(url, body, None)
}

/// `post_otlp` with the collector's `--otlp-auth-token`.
pub fn post_otlp_with(url: &str, body: &str, token: Option<&str>) {
    let bearer = format!("authorization: Bearer {}", token.unwrap_or_default());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let data = format!("@{}", file.path().display());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &data,
        url,
    ];
    if token.is_some() {
        args.extend(["-H", bearer.as_str()]);
    }
    while curl(&args).is_none() {
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
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON");
    // Kept as a file, not printed: a failing test's output then starts with its assertion
    // (CI shows only the beginning and the end of a long log).
    let dir = root().join("artifacts/web");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{mode}-report.json"));
    if std::fs::write(
        &file,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .is_ok()
    {
        println!("browser report ({mode}): {}", file.display());
    }
    report
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

pub fn attr(k: &str, v: &str) -> serde_json::Value {
    serde_json::json!({"key": k, "value": {"stringValue": v}})
}

/// OTLP JSON for `n` traces: frontend (root server) → checkout → payments; every third
/// payments call fails.
pub fn topology(n: usize, id_base: usize, leaf: &'static str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 20_000_000_000;
    let mut by_service: std::collections::BTreeMap<&str, Vec<serde_json::Value>> =
        Default::default();
    for i in 0..n {
        let t0 = now + i as u64 * 100_000_000;
        let trace = format!("{:032x}", id_base + i);
        let id = |k: u64| format!("{:016x}", (i as u64) * 16 + k + 1);
        let fail = i % 3 == 0;
        let span = |sid: u64,
                    parent: Option<u64>,
                    name: &str,
                    kind: u8,
                    start: u64,
                    end: u64,
                    err: bool| {
            serde_json::json!({
                "traceId": trace, "spanId": id(sid),
                "parentSpanId": parent.map(id).unwrap_or_default(),
                "name": name, "kind": kind,
                "startTimeUnixNano": (t0 + start).to_string(),
                "endTimeUnixNano": (t0 + end).to_string(),
                "attributes": [attr("http.route", name)],
                "status": {"code": if err { 2 } else { 1 }, "message": if err { "card declined" } else { "" }},
            })
        };
        let ms = 1_000_000;
        by_service.entry("frontend").or_default().extend([
            span(0, None, "GET /checkout", 2, 0, 40 * ms, fail),
            span(1, Some(0), "POST /orders", 3, 2 * ms, 36 * ms, fail),
        ]);
        by_service.entry("checkout").or_default().extend([
            span(2, Some(1), "POST /orders", 2, 3 * ms, 35 * ms, fail),
            span(3, Some(2), "POST /pay", 3, 5 * ms, 30 * ms, fail),
        ]);
        by_service.entry(leaf).or_default().push(span(
            4,
            Some(3),
            "POST /pay",
            2,
            6 * ms,
            29 * ms,
            fail,
        ));
    }
    let resource_spans: Vec<_> = by_service
        .into_iter()
        .map(|(svc, spans)| {
            serde_json::json!({
                "resource": {"attributes": [attr("service.name", svc), attr("service.instance.id", &format!("{svc}-1"))]},
                "scopeSpans": [{"scope": {"name": "web-e2e"}, "spans": spans}],
            })
        })
        .collect();
    serde_json::json!({ "resourceSpans": resource_spans }).to_string()
}

/// Waits until the API's graph (last 15 min) contains every fragment; `token` for a service
/// started with `--api-token`.
pub fn wait_for_graph(base: &str, token: Option<&str>, fragments: &[&str]) {
    let bearer = token.map(|t| format!("authorization: Bearer {t}"));
    let url = format!("{base}/orrery/api/graph?since=15m");
    let mut args = vec![url.as_str()];
    if let Some(h) = &bearer {
        args.extend(["-H", h.as_str()]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let g = curl(&args).unwrap_or_default();
        if fragments.iter().all(|f| g.contains(f)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "graph never showed {fragments:?}: {g}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
