//! The processes and the disk the soak breaks: the embedded engine, restartable on the same data
//! directory and port, and small tmpfs spools that can be filled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::deploy_support::*;

pub struct SoakEngine {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub port: u16,
    /// With the engine's current secret as credentials (`orrery embedded-clickhouse` makes a new
    /// one at every start and writes it to `<data-dir>/clickhouse.secret`).
    pub url: String,
}

impl SoakEngine {
    pub fn start(dir: &Path, port: u16) -> SoakEngine {
        let mut e = SoakEngine {
            proc: None,
            dir: dir.to_path_buf(),
            port,
            url: String::new(),
        };
        e.spawn();
        e
    }

    pub fn spawn(&mut self) {
        // The port may still be held for a moment by the server that just died.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let proc = spawn(
                "embedded-clickhouse",
                orrery()
                    .arg("embedded-clickhouse")
                    .arg("--data-dir")
                    .arg(&self.dir)
                    .args(["--embedded-port", &self.port.to_string()]),
            );
            self.proc = Some(proc);
            if self.wait_ready(Duration::from_secs(120)) {
                return;
            }
            assert!(Instant::now() < deadline, "the engine did not come back");
            if let Some(mut p) = self.proc.take() {
                p.kill_hard();
            }
        }
    }

    /// Whether /ping answers within `within` (false if the supervisor exited).
    pub fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(p) = self.proc.as_mut()
                && p.child.try_wait().unwrap().is_some()
            {
                return false;
            }
            if let Ok(secret) = std::fs::read_to_string(self.dir.join("clickhouse.secret")) {
                self.url = format!("http://default:{}@127.0.0.1:{}", secret.trim(), self.port);
                if matches!(get(&format!("{}/ping", self.url)), Some((200, _))) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The engine's server process (the supervisor's child).
    pub fn server_pid(&self) -> Option<u32> {
        self.proc
            .as_ref()
            .and_then(|p| children(p.pid()).into_iter().next())
    }

    pub fn kill_all(&mut self) {
        let server = self.server_pid();
        if let Some(mut p) = self.proc.take() {
            p.kill_hard();
        }
        // The server exits with its parent (--exit-with-parent); make sure.
        if let Some(pid) = server {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

// ---- tmpfs spools ------------------------------------------------------------------------------

/// A tmpfs mounted at a directory, unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, mib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with a file until the disk is full; returns its path.
pub fn fill_disk(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("soak-filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}
