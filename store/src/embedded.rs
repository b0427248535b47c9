//! The embedded ClickHouse: chDB (PyPI `chdb-core`) behind the ClickHouse HTTP interface,
//! served by `embedded/chdb_server.py` on 127.0.0.1 and supervised from here.
//!
//! [`EmbeddedClickHouse::start`] writes the server script into the data directory, generates a
//! random secret (the engine refuses every query without it) into `<data-dir>/clickhouse.secret`
//! (mode 0600), starts the server with the project's Python (the venv the install script made),
//! waits until `/ping` answers, and keeps a supervisor that restarts the server if it dies —
//! with exponential backoff ([`Backoff`]) and its state in an [`EngineHealth`] the roles report
//! on `/readyz` and `/metrics`. Dropping the handle (or [`EmbeddedClickHouse::stop`]) sends
//! SIGTERM and waits, so chDB closes its files cleanly.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, watch};

/// The server script and the module it imports (errors, SQL guard, access config), compiled
/// into the binary so a release needs no source tree; written side by side into a directory.
pub const SERVER_FILES: [(&str, &str); 2] = [
    ("chdb_server.py", include_str!("../embedded/chdb_server.py")),
    ("chdb_guard.py", include_str!("../embedded/chdb_guard.py")),
];

/// Writes [`SERVER_FILES`] into `dir` (each only if it differs); returns the script's path.
pub fn write_server_files(dir: &Path) -> Result<PathBuf> {
    for (name, text) in SERVER_FILES {
        write_if_changed(&dir.join(name), text)?;
    }
    Ok(dir.join(SERVER_FILES[0].0))
}

/// Settings of the embedded engine.
#[derive(Args, Debug, Clone)]
pub struct EmbeddedArgs {
    /// Directory for Orrery's local data (the embedded ClickHouse's files live in
    /// `<dir>/clickhouse`).
    #[arg(long, env = "ORRERY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Loopback port of the embedded ClickHouse HTTP interface; 0 picks a free one.
    #[arg(long, env = "ORRERY_EMBEDDED_PORT", default_value_t = 18123)]
    pub embedded_port: u16,

    /// Python interpreter that has `chdb-core` installed (the install script's venv).
    #[arg(long, env = "ORRERY_CHDB_PYTHON", default_value = "./.venv/bin/python")]
    pub chdb_python: PathBuf,
}

/// A running, supervised embedded ClickHouse.
pub struct EmbeddedClickHouse {
    url: String,
    endpoint: String,
    secret: String,
    secret_file: PathBuf,
    child: Arc<Mutex<Option<Child>>>,
    stop_tx: watch::Sender<bool>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    health: EngineHealth,
}

/// How the supervisor spaces restarts: the first after `initial`, each further one after twice
/// the last, up to `max`; an engine that stayed up for `healthy_after` starts again at `initial`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// What the supervisor is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Answering.
    Up,
    /// Died (or a restart failed); the `attempt`-th restart starts after `delay`.
    Restarting { attempt: u32, delay: Duration },
    /// Stopped on purpose.
    Stopped,
}

/// The embedded engine's health, shared with the roles: `/readyz` reports the engine degraded
/// while it is not [`EngineState::Up`], and [`EngineHealth::register`] adds
/// `orrery_embedded_engine_up` and `orrery_embedded_engine_restarts_total` to a registry.
#[derive(Clone)]
pub struct EngineHealth {
    state: Arc<watch::Sender<EngineState>>,
    up: Gauge<i64, AtomicI64>,
    restarts: Counter<u64, AtomicU64>,
}

impl std::fmt::Debug for EngineHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHealth")
            .field("state", &self.state())
            .field("restarts", &self.restarts())
            .finish()
    }
}

impl EngineHealth {
    fn new() -> Self {
        let (state, _) = watch::channel(EngineState::Up);
        let up = Gauge::default();
        up.set(1);
        Self {
            state: Arc::new(state),
            up,
            restarts: Counter::default(),
        }
    }

    fn set(&self, state: EngineState) {
        self.up.set(i64::from(state == EngineState::Up));
        self.state.send_replace(state);
    }

    /// Why a role is not ready because of the engine (for a `/readyz` body), None while up.
    pub fn not_ready_reason(&self) -> Option<String> {
        match self.state() {
            EngineState::Up => None,
            EngineState::Restarting { attempt, delay } => Some(format!(
                "embedded ClickHouse down, restart attempt {attempt} after {delay:?}"
            )),
            EngineState::Stopped => Some("embedded ClickHouse stopped".into()),
        }
    }

    /// True while the engine answers (not restarting, not stopped).
    pub fn is_up(&self) -> bool {
        *self.state.borrow() == EngineState::Up
    }

    pub fn state(&self) -> EngineState {
        *self.state.borrow()
    }

    /// Every change of state, e.g. for a test or a readiness watcher.
    pub fn subscribe(&self) -> watch::Receiver<EngineState> {
        self.state.subscribe()
    }

    /// Restarts completed since the engine first started.
    pub fn restarts(&self) -> u64 {
        self.restarts.get()
    }

    /// Registers `orrery_embedded_engine_up` (1 while answering) and
    /// `orrery_embedded_engine_restarts_total` in a role's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "orrery_embedded_engine_up",
            "1 while the embedded ClickHouse answers, 0 while it restarts or is stopped",
            self.up.clone(),
        );
        registry.register(
            "orrery_embedded_engine_restarts",
            "Restarts of the embedded ClickHouse after it died",
            self.restarts.clone(),
        );
    }
}

struct Launch {
    python: PathBuf,
    script: PathBuf,
    db_path: PathBuf,
    port_file: PathBuf,
    secret_file: PathBuf,
    port: u16,
}

impl Launch {
    async fn spawn(&self) -> Result<(Child, u16)> {
        let _ = std::fs::remove_file(&self.port_file);
        let mut child = Command::new(&self.python)
            .arg(&self.script)
            .arg("--path")
            .arg(&self.db_path)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--port-file")
            .arg(&self.port_file)
            .arg("--secret-file")
            .arg(&self.secret_file)
            .arg("--exit-with-parent")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting the embedded ClickHouse with {} (run scripts/install.sh, or set \
                     ORRERY_CHDB_PYTHON to a Python that has chdb-core)",
                    self.python.display()
                )
            })?;
        // chDB loads a ~500 MB library; the first start after boot can take a few seconds.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("embedded ClickHouse exited during startup with {status}");
            }
            if let Ok(text) = std::fs::read_to_string(&self.port_file)
                && let Ok(port) = text.trim().parse::<u16>()
                && ping(port).await
            {
                return Ok((child, port));
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                bail!("embedded ClickHouse did not answer /ping within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn ping(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/ping");
    matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
}

/// A new random secret: 32 bytes from the kernel, hex.
pub fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the embedded engine's secret")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `secret` to `path` with mode 0600 (created so, never widened), atomically.
pub fn write_secret_file(path: &Path, secret: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("secret.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl EmbeddedClickHouse {
    /// Starts the server and its supervisor. Returns once it answers `/ping`.
    pub async fn start(args: &EmbeddedArgs) -> Result<Self> {
        Self::start_with(args, Backoff::default()).await
    }

    /// [`EmbeddedClickHouse::start`] with another restart backoff (tests).
    pub async fn start_with(args: &EmbeddedArgs, backoff: Backoff) -> Result<Self> {
        let data_dir = &args.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let script = write_server_files(&data_dir)?;
        // A new secret at every start: whoever held the last one (a leaked copy) is out.
        let secret = generate_secret()?;
        let secret_file = data_dir.join("clickhouse.secret");
        write_secret_file(&secret_file, &secret)?;
        let launch = Launch {
            python: args.chdb_python.clone(),
            script,
            db_path: data_dir.join("clickhouse"),
            port_file: data_dir.join("clickhouse.port"),
            secret_file: secret_file.clone(),
            port: args.embedded_port,
        };
        let (child, port) = launch.spawn().await?;
        // After a restart the server must come back on the same port: clients hold the URL.
        let launch = Launch { port, ..launch };
        let endpoint = format!("http://127.0.0.1:{port}");
        tracing::info!(
            url = %endpoint,
            path = %launch.db_path.display(),
            secret_file = %secret_file.display(),
            "embedded ClickHouse (chDB) ready"
        );
        let child = Arc::new(Mutex::new(Some(child)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let health = EngineHealth::new();
        let watcher = tokio::spawn(supervise(
            launch,
            child.clone(),
            stop_rx,
            health.clone(),
            backoff,
        ));
        Ok(Self {
            url: with_credentials(&endpoint, &secret),
            endpoint,
            secret,
            secret_file,
            child,
            stop_tx,
            watcher: Some(watcher),
            health,
        })
    }

    /// The URL to give [`crate::ClickHouseArgs`] (`--clickhouse-url`), the secret included as
    /// `default:<secret>@` — which `ClickHouseArgs` sends as the `clickhouse` crate's
    /// credentials. Never log it: [`EmbeddedClickHouse::endpoint`] is the same without the
    /// secret.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:<port>`, without credentials (for logs and messages).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The secret every request must carry (as the password of user `default`).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `<data-dir>/clickhouse.secret` (mode 0600), which processes in front of a separate
    /// `orrery embedded-clickhouse` read (`--clickhouse-password-file`).
    pub fn secret_file(&self) -> &Path {
        &self.secret_file
    }

    /// The supervisor's view of the engine, for `/readyz` and `/metrics`.
    pub fn health(&self) -> EngineHealth {
        self.health.clone()
    }

    /// OS process id of the current server (tests kill it to check recovery).
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(|c| c.id())
    }

    /// Stops supervising and terminates the server gracefully.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        let _ = self.stop_tx.send(true);
        if let Some(w) = self.watcher.take() {
            let _ = w.await;
        }
        if let Some(child) = self.child.lock().await.take() {
            terminate(child).await;
        }
        self.health.set(EngineState::Stopped);
    }
}

/// `http://127.0.0.1:1234` + secret → `http://default:<secret>@127.0.0.1:1234`.
pub fn with_credentials(endpoint: &str, secret: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://default:{secret}@{rest}"),
        None => format!("http://default:{secret}@{endpoint}"),
    }
}

impl Drop for EmbeddedClickHouse {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
        if let Ok(mut guard) = self.child.try_lock()
            && let Some(child) = guard.as_mut()
            && let Some(pid) = child.id()
        {
            // SIGTERM lets chDB close its parts; kill_on_drop is the backstop.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

async fn terminate(mut child: Child) {
    if let Some(pid) = child.id() {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        tracing::warn!("embedded ClickHouse ignored SIGTERM for 10 s; killing it");
        let _ = child.kill().await;
    }
}

/// Restarts the server whenever it exits, with exponential backoff, until told to stop. One
/// log line per change of state.
async fn supervise(
    launch: Launch,
    child: Arc<Mutex<Option<Child>>>,
    mut stop: watch::Receiver<bool>,
    health: EngineHealth,
    policy: Backoff,
) {
    let mut delay = policy.initial;
    let mut attempt = 0u32;
    let mut up_since = Instant::now();
    loop {
        // Poll the child's status without holding the lock across the wait, so `pid()` and
        // `stop()` stay responsive.
        let exited = {
            let mut guard = child.lock().await;
            match guard.as_mut() {
                Some(c) => match c.try_wait() {
                    Ok(Some(status)) => Some(status.to_string()),
                    Ok(None) => None,
                    Err(e) => Some(e.to_string()),
                },
                None => Some("no process".into()),
            }
        };
        let Some(status) = exited else {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            }
        };
        if *stop.borrow() {
            return;
        }
        child.lock().await.take();
        // A crash after a healthy stretch starts the backoff over; a crash loop doubles it.
        if attempt == 0 && up_since.elapsed() >= policy.healthy_after {
            delay = policy.initial;
        }
        attempt += 1;
        health.set(EngineState::Restarting { attempt, delay });
        tracing::warn!(%status, ?delay, attempt, "embedded ClickHouse exited; restarting");
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(policy.max);
        match launch.spawn().await {
            Ok((new_child, _)) => {
                if *stop.borrow() {
                    terminate(new_child).await;
                    return;
                }
                *child.lock().await = Some(new_child);
                health.restarts.inc();
                health.set(EngineState::Up);
                up_since = Instant::now();
                tracing::info!(
                    attempt,
                    restarts = health.restarts(),
                    "embedded ClickHouse restarted"
                );
                attempt = 0;
            }
            Err(err) => {
                tracing::error!(error = %err, attempt, "embedded ClickHouse restart failed");
            }
        }
    }
}

fn write_if_changed(path: &Path, content: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(content) {
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
