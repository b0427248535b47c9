//! The `orrery` binary as a user runs it: help text, DDL printing, all-in-one on the embedded
//! ClickHouse (schema applied, data on disk in --data-dir), clean exit on SIGTERM, and the data
//! still there at the next start.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orrery_store::testing::process::{free_port, orrery_command};

/// The binary under test, without a developer's ORRERY_* settings.
fn orrery() -> Command {
    orrery_command(env!("CARGO_BIN_EXE_orrery"))
}

#[test]
fn help_explains_every_role_and_setting_with_env_twins() {
    let out = orrery().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "all-in-one",
        "collector",
        "query",
        "migrate",
        "embedded-clickhouse",
        "--clickhouse-url",
        "ORRERY_CLICKHOUSE_URL",
        "--data-dir",
        "ORRERY_DATA_DIR",
        "--retention-days",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let out = orrery().args(["collector", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ORRERY_OTLP_GRPC_ADDR"));
}

#[test]
fn collector_without_a_clickhouse_url_says_what_to_do() {
    let out = orrery().arg("collector").output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--clickhouse-url"), "{text}");
}

#[test]
fn migrate_print_shows_cluster_ddl() {
    let out = orrery()
        .args([
            "migrate",
            "--print",
            "--clickhouse-cluster",
            "prod",
            "--clickhouse-database",
            "tracing",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ddl = String::from_utf8(out.stdout).unwrap();
    assert!(ddl.contains("CREATE TABLE IF NOT EXISTS tracing.otel_traces_local ON CLUSTER prod"));
    assert!(ddl.contains(
        "ENGINE = Distributed('prod', 'tracing', 'otel_traces_local', cityHash64(TraceId))"
    ));
    let bad = orrery()
        .args(["migrate", "--print", "--clickhouse-database", "x;DROP"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts all-in-one on `data`; returns the process, the engine's URL (with its secret) and the
/// collector's OTLP/HTTP port (which serves /readyz and /metrics).
fn start_all_in_one(data: &std::path::Path) -> (Running, String, u16) {
    let otlp_http = free_port();
    let child = orrery()
        .args(["--data-dir"])
        .arg(data)
        .args(["--embedded-port", "0"])
        .args(["--otlp-grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-http-addr", &format!("127.0.0.1:{otlp_http}")])
        .args(["--query-addr", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let running = Running(child);
    // The embedded engine writes its port once it answers; the schema follows right after.
    let deadline = Instant::now() + Duration::from_secs(120);
    let port_file = data.join("clickhouse.port");
    loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(port) = p.trim().parse::<u16>()
            && let Ok(secret) = std::fs::read_to_string(data.join("clickhouse.secret"))
        {
            // The engine's secret as the URL's credentials (curl sends them as basic auth).
            let url = format!("http://default:{}@127.0.0.1:{port}", secret.trim());
            let version = http_get(&format!(
                "{url}/?query=SELECT%20max(Version)%20FROM%20orrery.orrery_schema_migrations"
            ));
            if version == Some(orrery_store::schema::latest_version().to_string()) {
                return (running, url, otlp_http);
            }
        }
        assert!(
            Instant::now() < deadline,
            "all-in-one did not come up with its schema"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET with curl (a real HTTP client; the body trimmed), None unless 2xx.
fn http_get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn all_in_one_runs_on_the_embedded_engine_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, url, _) = start_all_in_one(dir.path());
    assert!(
        dir.path().join("clickhouse").is_dir(),
        "data lives under --data-dir"
    );
    // Store a row through the engine the binary started.
    let insert = format!(
        "{url}/?query=INSERT%20INTO%20orrery.otel_traces%20(TraceId,SpanId,ServiceName,Timestamp)%20VALUES%20('t','s','svc',now64(9))"
    );
    let status = Command::new("curl")
        .args(["-sf", "-X", "POST", &insert])
        .status()
        .unwrap();
    assert!(status.success());

    unsafe { kill(running.0.id() as i32, 15) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "all-in-one did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    // The engine went with it: its port no longer answers.
    assert!(http_get(&format!("{url}/ping")).is_none());

    // Next start: same data, schema untouched.
    let (_running, url, _) = start_all_in_one(dir.path());
    let count = http_get(&format!(
        "{url}/?query=SELECT%20count()%20FROM%20orrery.otel_traces"
    ));
    assert_eq!(count.as_deref(), Some("1"));
}

/// GET with curl: the status code and the body, whatever the status.
fn http_status(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// kill -9 of the embedded engine under all-in-one: the collector's /readyz turns 503 naming the
/// engine while the supervisor restarts it, /metrics counts the restart, and both come back.
#[test]
fn a_restarting_engine_makes_the_collector_unready_and_shows_in_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _url, http) = start_all_in_one(dir.path());
    let readyz = format!("http://127.0.0.1:{http}/readyz");
    let metrics = format!("http://127.0.0.1:{http}/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(&readyz).0 != 200 {
        assert!(Instant::now() < deadline, "collector never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        http_status(&metrics)
            .1
            .contains("orrery_embedded_engine_up 1")
    );
    let engine = orrery_store::testing::process::children(running.0.id());
    assert_eq!(
        engine.len(),
        1,
        "one engine process under all-in-one: {engine:?}"
    );
    unsafe { kill(engine[0] as i32, 9) };
    // The supervisor notices at once and waits its backoff before the new engine answers:
    // the collector must say so while it lasts.
    let deadline = Instant::now() + Duration::from_secs(30);
    let unready = loop {
        let (code, body) = http_status(&readyz);
        if code == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never reported the engine down"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(unready.contains("embedded ClickHouse"), "{unready}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(&readyz).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "collector not ready again after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = http_status(&metrics).1;
    assert!(
        text.contains("orrery_embedded_engine_restarts_total 1"),
        "{text}"
    );
    assert!(text.contains("orrery_embedded_engine_up 1"), "{text}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "one OpenMetrics EOF at the end"
    );
    assert_eq!(text.matches("# EOF").count(), 1);
}

/// The empty map's "how to send spans" names the collector as bound: with port 0 the OS picks
/// the ports, and `/orrery/api/config` (what the UI reads) must give those, which answer.
#[test]
fn the_ui_is_told_the_collectors_bound_ports_not_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let query = free_port();
    let _running = Running(
        orrery()
            .args(["--data-dir"])
            .arg(dir.path())
            .args(["--embedded-port", "0"])
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--query-addr", &format!("127.0.0.1:{query}")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let config = loop {
        if let Some(c) = http_get(&format!("http://127.0.0.1:{query}/orrery/api/config")) {
            break serde_json::from_str::<serde_json::Value>(&c).unwrap();
        }
        assert!(Instant::now() < deadline, "no /orrery/api/config");
        std::thread::sleep(Duration::from_millis(100));
    };
    for proto in ["grpc", "http"] {
        let url = config["otlp"][proto].as_str().unwrap_or_default();
        let addr: std::net::SocketAddr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{proto}: {config}"));
        assert_ne!(addr.port(), 0, "{proto}: {config}");
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{proto} endpoint {addr} does not answer: {e}"));
    }
    // The collector answers OTLP/HTTP there (its readiness on the same listener).
    let http = config["otlp"]["http"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(&format!("{http}/readyz")).0 != 200 {
        assert!(Instant::now() < deadline, "collector at {http} never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// After `kill -9` of `orrery`, its embedded ClickHouse must not live on as an orphan holding the
/// data directory and port — even when its stdout pipe died with the parent (logging then fails).
#[test]
fn embedded_engine_exits_when_orrery_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = orrery()
        .args(["embedded-clickhouse", "--embedded-port", "0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port_file = dir.path().join("clickhouse.port");
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok())
        {
            let url = format!("http://127.0.0.1:{port}");
            if http_get(&format!("{url}/ping")).is_some() {
                break url;
            }
        }
        assert!(Instant::now() < deadline, "embedded engine did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Close our end of the shared stdout pipe, then kill the parent outright.
    drop(child.stdout.take());
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while http_get(&format!("{url}/ping")).is_some() {
        assert!(
            Instant::now() < deadline,
            "embedded ClickHouse outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
