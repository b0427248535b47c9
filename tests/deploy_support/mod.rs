//! Orrery scaled out on this machine, as separate `orrery` processes on free loopback ports:
//! one `orrery embedded-clickhouse`, N `orrery collector`s and M `orrery query` replicas pointed
//! at it by `--clickhouse-url`. Shared by tests/deploy_scale_out.rs and benches/scale_out.rs.
#![allow(dead_code)]

pub mod splitter;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback address for a process to bind (`free_port`: outside the ephemeral range).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], orrery_store::testing::process::free_port()))
}

// Not every user of this module needs all of them.
#[allow(unused_imports)]
pub use orrery_store::testing::process::{children, cpu_seconds, rss_kib};

/// The binary under test, without a developer's ORRERY_*/OTEL_* settings.
pub fn orrery() -> Command {
    let mut cmd = orrery_store::testing::process::orrery_command(env!("CARGO_BIN_EXE_orrery"));
    cmd.env("ORRERY_LOG", "warn");
    cmd
}

/// A child process killed (SIGKILL) when dropped, unless stopped first.
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn signal(&self, sig: i32) {
        unsafe { kill(self.child.id() as i32, sig) };
    }
    /// SIGTERM and wait (up to `within`) for a clean exit.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal(15);
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Graceful first so the engine's child exits with it, then for sure.
            self.signal(15);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Proc {
        name: name.to_string(),
        child,
    }
}

/// GET with a short timeout; the status and body, None if nothing answered.
pub fn get(url: &str) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    let code: u16 = code.trim().parse().ok()?;
    (code != 0).then(|| (code, body.to_string()))
}

pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SQL over the ClickHouse HTTP interface (the engine's own), the result trimmed.
pub fn sql(url: &str, query: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--max-time",
            "60",
            "--data-binary",
            query,
            url,
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "{query}: {body}");
    body
}

pub struct Engine {
    pub proc: Proc,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// `orrery embedded-clickhouse` on a free port, answering /ping.
pub fn start_engine() -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let proc = spawn(
        "embedded-clickhouse",
        orrery()
            .arg("embedded-clickhouse")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--embedded-port", "0"]),
    );
    let port_file = dir.path().join("clickhouse.port");
    let mut url = String::new();
    wait_until("the embedded ClickHouse", Duration::from_secs(120), || {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok())
            && let Ok(secret) = std::fs::read_to_string(dir.path().join("clickhouse.secret"))
        {
            // The engine's per-start secret as the URL's credentials: `--clickhouse-url` and
            // curl both send them (a test shortcut; operators use --clickhouse-password-file).
            url = format!("http://default:{}@127.0.0.1:{port}", secret.trim());
            return matches!(get(&format!("{url}/ping")), Some((200, _)));
        }
        false
    });
    Engine {
        proc,
        url,
        _dir: dir,
    }
}

pub fn migrate(url: &str, database: &str) {
    let out = orrery()
        .args(["migrate", "--clickhouse-url", url])
        .args(["--clickhouse-database", database])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Collector {
    pub proc: Proc,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub spool: PathBuf,
}

impl Collector {
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// `orrery collector` on free ports with its own spool directory, ready (`/readyz` 200).
pub fn start_collector(url: &str, database: &str, spool: &Path) -> Collector {
    let (grpc, http) = (free_addr(), free_addr());
    start_collector_at(url, database, spool, grpc, http)
}

pub fn start_collector_at(
    url: &str,
    database: &str,
    spool: &Path,
    grpc: SocketAddr,
    http: SocketAddr,
) -> Collector {
    std::fs::create_dir_all(spool).unwrap();
    let proc = spawn(
        "collector",
        orrery()
            .args(["collector", "--no-migrate", "--clickhouse-url", url])
            .args(["--clickhouse-database", database])
            .args(["--otlp-grpc-addr", &grpc.to_string()])
            .args(["--otlp-http-addr", &http.to_string()])
            .arg("--spool-dir")
            .arg(spool),
    );
    wait_until("a collector's /readyz", Duration::from_secs(60), || {
        matches!(get(&format!("http://{http}/readyz")), Some((200, _)))
    });
    Collector {
        proc,
        grpc,
        http,
        spool: spool.to_path_buf(),
    }
}

pub struct Query {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Query {
    pub fn get(&self, path: &str) -> (u16, String) {
        get(&format!("http://{}{path}", self.addr)).expect("query replica answers")
    }

    /// Waits (at most 90 s) until this replica's live graph of `[start_ms, end_ms)` ends at or
    /// after `sent_ms`: a live graph ends at the newest 10-second slot the rollup closed
    /// (`window.through_ms`, 5–15 s ago), so graphs compared across replicas, or with what
    /// was sent, are read once that slot holds everything sent.
    pub fn wait_settled(&self, start_ms: i64, end_ms: i64, sent_ms: i64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (code, body) = self.get(&format!(
                "/orrery/api/graph?level=global&start={start_ms}&end={end_ms}"
            ));
            assert_eq!(code, 200, "{body}");
            let g: serde_json::Value = serde_json::from_str(&body).unwrap();
            let through = g["window"]["through_ms"].as_i64();
            if through.is_none_or(|t| t >= sent_ms) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the graph still ends at {through:?}, before {sent_ms}, after 90 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `orrery query` on a free port, answering HTTP.
pub fn start_query(url: &str, database: &str) -> Query {
    let addr = free_addr();
    let proc = spawn(
        "query",
        orrery()
            .args(["query", "--no-migrate", "--clickhouse-url", url])
            .args(["--clickhouse-database", database])
            .args(["--query-addr", &addr.to_string()]),
    );
    wait_until("a query replica", Duration::from_secs(60), || {
        get(&format!("http://{addr}/orrery/api/health")).is_some_and(|(c, _)| c == 200)
    });
    Query { proc, addr }
}
