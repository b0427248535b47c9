//! The embedded ClickHouse: chDB (PyPI `chdb-core`) behind the ClickHouse HTTP interface,
//! served by `embedded/chdb_server.py` on 127.0.0.1 and supervised from here.
//!
//! [`EmbeddedClickHouse::start`] writes the server script into the data directory, starts it
//! with the project's Python (the venv the install script made), waits until `/ping` answers,
//! and keeps a watcher that restarts the server with backoff if it dies. Dropping the handle
//! (or [`EmbeddedClickHouse::stop`]) sends SIGTERM and waits, so chDB closes its files cleanly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, watch};

/// The server script, compiled into the binary so a release needs no source tree.
pub const SERVER_SCRIPT: &str = include_str!("../embedded/chdb_server.py");

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
    child: Arc<Mutex<Option<Child>>>,
    stop_tx: watch::Sender<bool>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

struct Launch {
    python: PathBuf,
    script: PathBuf,
    db_path: PathBuf,
    port_file: PathBuf,
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

impl EmbeddedClickHouse {
    /// Starts the server and its supervisor. Returns once it answers `/ping`.
    pub async fn start(args: &EmbeddedArgs) -> Result<Self> {
        let data_dir = &args.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let script = data_dir.join("chdb_server.py");
        write_if_changed(&script, SERVER_SCRIPT)?;
        let launch = Launch {
            python: args.chdb_python.clone(),
            script,
            db_path: data_dir.join("clickhouse"),
            port_file: data_dir.join("clickhouse.port"),
            port: args.embedded_port,
        };
        let (child, port) = launch.spawn().await?;
        // After a restart the server must come back on the same port: clients hold the URL.
        let launch = Launch { port, ..launch };
        let url = format!("http://127.0.0.1:{port}");
        tracing::info!(%url, path = %launch.db_path.display(), "embedded ClickHouse (chDB) ready");
        let child = Arc::new(Mutex::new(Some(child)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = tokio::spawn(supervise(launch, child.clone(), stop_rx));
        Ok(Self {
            url,
            child,
            stop_tx,
            watcher: Some(watcher),
        })
    }

    /// The HTTP URL to give the `clickhouse` crate.
    pub fn url(&self) -> &str {
        &self.url
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

/// Restarts the server whenever it exits, with exponential backoff, until told to stop.
async fn supervise(
    launch: Launch,
    child: Arc<Mutex<Option<Child>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        // Poll the child's status without holding the lock across the wait, so `pid()` and
        // `stop()` stay responsive.
        let exited = {
            let mut guard = child.lock().await;
            match guard.as_mut() {
                Some(c) => matches!(c.try_wait(), Ok(Some(_)) | Err(_)),
                None => return,
            }
        };
        if !exited {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            }
        }
        if *stop.borrow() {
            return;
        }
        tracing::warn!(?backoff, "embedded ClickHouse exited; restarting");
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        match launch.spawn().await {
            Ok((new_child, _)) => {
                *child.lock().await = Some(new_child);
                backoff = Duration::from_millis(200);
                tracing::info!("embedded ClickHouse restarted");
            }
            Err(err) => {
                tracing::error!(error = %err, "embedded ClickHouse restart failed");
                backoff = (backoff * 2).min(Duration::from_secs(10));
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
