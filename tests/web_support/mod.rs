//! Shared by the browser tests: the real `orrery all-in-one` on free ports serving web/dist,
//! curl helpers, and the node/puppeteer runner.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orrery"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ORRERY_") && k != "ORRERY_CHDB_PYTHON" {
            cmd.env_remove(k);
        }
    }
    let running = Running(
        cmd.env("ORRERY_CHDB_PYTHON", orrery_store::testing::chdb_python())
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
