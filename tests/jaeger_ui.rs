//! The real Jaeger UI (v2.19.0, unmodified, prebuilt in `../shared/jaeger-ui`) against
//! `orrery all-in-one`: traces sent with the official OpenTelemetry JS SDK, the UI served by
//! its own `serve.mjs` in front of Orrery's query port, driven in headless Chromium by its
//! `check.mjs`. Search must list the services and find the traces (API v3), the trace page must
//! show the right span and service counts (v1), System Architecture must draw the edges.
//!
//! Skipped, with a message saying why, only when `../shared/jaeger-ui` (next to the repository)
//! is absent. Everything else it needs is made by scripts/install.sh (Chromium, the Node SDK in
//! tests/clients, puppeteer-core in web/tests/node_modules): missing, the test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orrery_store::testing::process::{free_port, orrery_command};
use serde_json::Value;

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    orrery_store::testing::manifest_dir(env!("CARGO_MANIFEST_DIR"))
}

fn jaeger_ui_dir() -> Option<PathBuf> {
    let dir = repo().parent()?.join("shared/jaeger-ui");
    dir.join("dist/index.html").is_file().then_some(dir)
}

/// GET with curl, the body when 2xx.
fn http_get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_all_in_one(data: &Path) -> (Running, String, String) {
    let otlp = format!("127.0.0.1:{}", free_port());
    let query = format!("127.0.0.1:{}", free_port());
    let child = orrery_command(env!("CARGO_BIN_EXE_orrery"))
        .args(["all-in-one", "--data-dir"])
        .arg(data)
        .args(["--embedded-port", "0"])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-http-addr", &otlp])
        .args(["--query-addr", &query])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let running = Running(child);
    let base = format!("http://{query}");
    wait_for("all-in-one", Duration::from_secs(120), || {
        http_get(&format!("{base}/orrery/api/health")).filter(|b| b.contains("\"ok\""))
    });
    (running, format!("http://{otlp}"), base)
}

#[test]
fn the_real_jaeger_ui_searches_opens_traces_and_draws_the_architecture() {
    let Some(ui) = jaeger_ui_dir() else {
        eprintln!(
            "SKIPPED jaeger_ui: {} is absent (the prebuilt Jaeger UI v2.19.0 with serve.mjs and \
             check.mjs; see its README)",
            repo().parent().unwrap().join("shared/jaeger-ui").display()
        );
        return;
    };
    let clients = repo().join("tests/clients");
    assert!(
        clients
            .join("node_modules/@opentelemetry/sdk-trace-base")
            .is_dir(),
        "run scripts/install.sh (npm ci in tests/clients: the official OpenTelemetry JS SDK)"
    );
    let puppeteer = repo().join("web/tests/node_modules");
    assert!(
        puppeteer.join("puppeteer-core").is_dir(),
        "run scripts/install.sh (puppeteer-core in web/tests/node_modules)"
    );

    let data = tempfile::tempdir().unwrap();
    let (_orrery, otlp, base) = start_all_in_one(data.path());

    // Send with the official SDK; it reports what it sent.
    let out = Command::new("node")
        .current_dir(&clients)
        .arg("otel_node_shop.js")
        .arg(&otlp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).unwrap();
    let traces = sent["traces"].as_object().unwrap();
    assert_eq!(traces.len(), 3, "{sent}");
    let total_spans: u64 = traces.values().map(|t| t["spans"].as_u64().unwrap()).sum();
    // The biggest trace is the one opened in the UI.
    let (big_id, big) = traces
        .iter()
        .max_by_key(|(_, t)| t["spans"].as_u64().unwrap())
        .unwrap();

    // Wait until every span is searchable through the API the UI uses.
    wait_for("the spans to be stored", Duration::from_secs(60), || {
        let start = "2000-01-01T00:00:00Z";
        let url = format!(
            "{base}/api/v3/trace-summaries?query.serviceName=frontend&query.startTimeMin={start}\
             &query.startTimeMax=2100-01-01T00:00:00Z"
        );
        let v: Value = serde_json::from_str(&http_get(&url)?).ok()?;
        let stored: u64 = v["summaries"]
            .as_array()?
            .iter()
            .map(|s| s["spanCount"].as_u64().unwrap_or(0))
            .sum();
        (stored == total_spans).then_some(())
    });

    // The UI's own static server and proxy in front of the query port.
    let ui_port = free_port();
    let mut serve = Running(
        Command::new("node")
            .arg(ui.join("serve.mjs"))
            .args(["--port", &ui_port.to_string(), "--backend", &base])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("jaeger-ui on"), "serve.mjs said {line:?}");
    let ui_url = format!("http://127.0.0.1:{ui_port}");

    let shots = tempfile::tempdir().unwrap();
    let services = ["checkout", "frontend", "inventory", "payments"];
    let check = Command::new("node")
        .arg(ui.join("check.mjs"))
        .args(["--url", &ui_url, "--service", "frontend", "--trace", big_id])
        .args(["--services", &services.join(",")])
        .args(["--timeout", "30000", "--require-deps", "--out"])
        .arg(shots.path())
        .env("NODE_PATH", &puppeteer)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
            panic!(
                "check.mjs printed no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&check.stderr)
            )
        });
    let steps = &report["steps"];
    assert!(
        check.status.success() && report["ok"] == true,
        "check.mjs failed: {report:#}"
    );

    // Search: every service listed, the three traces found (through /api/v3).
    let search = &steps["search"];
    assert_eq!(
        search["servicesListed"].as_u64(),
        Some(services.len() as u64),
        "{search:#}"
    );
    assert_eq!(search["selected"], "frontend", "{search:#}");
    let mut found: Vec<String> = search["traceIds"]
        .as_array()
        .unwrap_or_else(|| panic!("no traceIds: {search:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    found.sort();
    let mut expected: Vec<String> = traces.keys().cloned().collect();
    expected.sort();
    assert_eq!(found, expected, "{search:#}");

    // Trace page: the right span and service counts.
    let trace = &steps["trace"];
    assert_eq!(
        trace["totalSpans"].as_u64(),
        big["spans"].as_u64(),
        "{trace:#}"
    );
    assert_eq!(
        trace["servicesCount"].as_u64(),
        Some(big["services"].as_array().unwrap().len() as u64),
        "{trace:#}"
    );
    assert_eq!(trace["servicesMissing"], serde_json::json!([]), "{trace:#}");

    // System Architecture: a graph with every service that has an edge.
    let deps = &steps["dependencies"];
    assert_eq!(deps["state"], "graph", "{deps:#}");
    let nodes = deps["nodesSeen"].to_string();
    for s in services {
        assert!(nodes.contains(s), "architecture lacks {s}: {deps:#}");
    }

    // The UI searched through API v3 and every API call it made succeeded.
    let api = report["api"].as_array().unwrap();
    for path in [
        "/api/v3/services",
        "/api/v3/operations",
        "/api/v3/trace-summaries",
    ] {
        assert!(
            api.iter()
                .any(|c| c["path"].as_str().is_some_and(|p| p.starts_with(path))
                    && c["status"] == 200),
            "the UI made no successful {path} call: {api:#?}"
        );
    }
    let failed: Vec<&Value> = api
        .iter()
        .filter(|c| c["status"].as_u64().is_none_or(|s| s >= 400))
        .collect();
    assert!(failed.is_empty(), "API calls failed: {failed:#?}");
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{report:#}");
}
