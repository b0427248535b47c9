//! Test support: one real embedded ClickHouse per test process, a fresh migrated database per
//! test. Used by every crate's integration tests (the brief: tests run against the real engine).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::embedded::{generate_secret, with_credentials, write_secret_file, write_server_files};
use crate::schema::{self, SchemaParams};
use crate::{ClickHouseArgs, SpanRow};

pub mod process;

/// An embedded ClickHouse started for tests. It exits with the test process.
pub struct TestServer {
    /// `http://default:<secret>@127.0.0.1:<port>`: what `ClickHouseArgs` (and reqwest, curl)
    /// turn into credentials. The raw `clickhouse` crate ignores them: give it `secret`.
    pub url: String,
    /// `http://127.0.0.1:<port>`, no credentials.
    pub endpoint: String,
    /// The password of user `default`; the engine refuses queries without it.
    pub secret: String,
    pub port: u16,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    _child: Child,
}

/// The directory of the package whose tests or benches run: `CARGO_MANIFEST_DIR` as cargo sets
/// it when it runs them, else `built_in` (the caller's `env!("CARGO_MANIFEST_DIR")`, for a test
/// binary started by hand). Read at run time because checkouts that share one target dir (a CI
/// clone beside the working copy) share test binaries too: a path baked in at build time would
/// point a test at the other checkout's files (its web/dist, its docs).
pub fn manifest_dir(built_in: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(built_in))
}

static SHARED: OnceLock<TestServer> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The Python that has chdb-core: `ORRERY_CHDB_PYTHON`, else the project's `.venv`.
pub fn chdb_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ORRERY_CHDB_PYTHON") {
        return PathBuf::from(p);
    }
    let manifest = manifest_dir(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let candidate = dir.join(".venv/bin/python");
        if candidate.exists() {
            return candidate;
        }
    }
    panic!("no chDB Python found: run scripts/install.sh or set ORRERY_CHDB_PYTHON");
}

impl TestServer {
    /// Starts a new embedded ClickHouse in a temporary directory (blocking).
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// [`TestServer::start`] with more arguments for the server (e.g. its limits).
    pub fn start_with(extra_args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = write_server_files(dir.path()).expect("write server script");
        let port_file = dir.path().join("port");
        let data_dir = dir.path().join("clickhouse");
        let secret = generate_secret().expect("secret");
        let secret_file = dir.path().join("clickhouse.secret");
        write_secret_file(&secret_file, &secret).expect("write secret file");
        let mut cmd = Command::new(chdb_python());
        if std::env::var_os("ORRERY_TEST_CHDB_VERBOSE").is_some() {
            cmd.arg(&script).arg("--verbose");
        } else {
            cmd.arg(&script);
        }
        let child = cmd
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--exit-with-parent",
                "--path",
            ])
            .arg(&data_dir)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--secret-file")
            .arg(&secret_file)
            .args(extra_args)
            // The shared server lives in a static that is never dropped: the server itself
            // removes its temporary directory when the test process exits.
            .arg("--remove-on-exit")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chdb_server.py");
        let deadline = Instant::now() + Duration::from_secs(120);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
                .filter(|p| ping_blocking(*p))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "embedded ClickHouse did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        TestServer {
            url: with_credentials(&endpoint, &secret),
            endpoint,
            secret,
            port,
            data_dir,
            _dir: dir,
            _child: child,
        }
    }

    /// A `clickhouse` crate client for this server, with its secret.
    pub fn client(&self) -> clickhouse::Client {
        ClickHouseArgs::for_url(&self.url, "default").server_client(&self.url)
    }

    /// The process-wide shared server.
    pub fn shared() -> &'static TestServer {
        SHARED.get_or_init(TestServer::start)
    }

    /// Settings for a new, empty, migrated database on this server.
    pub async fn fresh_database(&self) -> ClickHouseArgs {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let db = format!("test_{}_{n}", std::process::id());
        let args = ClickHouseArgs::for_url(&self.url, db);
        let params = SchemaParams::from_args(&args).expect("schema params");
        schema::migrate(&args.server_client(&self.url), &params)
            .await
            .expect("migrate test database");
        args
    }
}

/// Shorthand: a fresh migrated database on the shared test server.
pub async fn fresh_database() -> ClickHouseArgs {
    TestServer::shared().fresh_database().await
}

fn ping_blocking(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

/// A span for tests, by numbers: trace `trace` (32 hex digits), span `id` (16), child of
/// `parent` (0: a root), named "`service` `kind`", starting at `ts` (ns), with `service.name`
/// as its only resource attribute, status `Unset` and no duration — the one shape the graph
/// tests and benches build their traces from (each sets what it varies: duration, resource,
/// status).
pub fn span(trace: u64, id: u64, parent: u64, service: &str, kind: &str, ts: i64) -> SpanRow {
    SpanRow {
        timestamp: ts,
        trace_id: format!("{trace:032x}"),
        span_id: format!("{id:016x}"),
        parent_span_id: if parent == 0 {
            String::new()
        } else {
            format!("{parent:016x}")
        },
        span_name: format!("{service} {kind}"),
        span_kind: kind.into(),
        service_name: service.into(),
        resource_attributes: vec![("service.name".into(), service.into())],
        status_code: "Unset".into(),
        ..Default::default()
    }
}
