//! Durable file operations of the spool and its health: files `0600`, directories `0700`, the
//! directory fsynced after a segment is created, renamed or deleted (per the fsync policy), and
//! write or fsync failures remembered so that `/readyz` answers 503 until the disk works again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::counter::Counter;

/// Spool files hold other teams' trace data: only the collector's user reads them.
pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and parents) and makes it `0700`.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Options for a new spool file: `0600`.
pub fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Makes the directory entries of `dir` durable: a file created, renamed or removed in it is
/// only safe from power loss once its directory is synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What went wrong with the spool's disk, if anything, and whether the directory has changes
/// that the interval syncer still has to make durable.
#[derive(Debug, Default)]
pub struct Health {
    /// The last failed write's error and size.
    write_error: Mutex<Option<(String, usize)>>,
    fsync_error: Mutex<Option<String>>,
    /// Set by entry changes under `Fsync::Interval`; the syncer syncs the directory.
    pub dir_dirty: AtomicBool,
    pub fsync_errors: Counter,
}

impl Health {
    pub fn new(fsync_errors: Counter) -> Self {
        Self {
            fsync_errors,
            ..Self::default()
        }
    }

    /// Records the outcome of a spool write of `size` bytes; logs once per change of state.
    pub fn write_result(&self, result: &io::Result<()>, size: usize) {
        let mut state = self.write_error.lock().expect("health lock");
        match (result, state.is_some()) {
            (Err(e), false) => {
                tracing::error!(error = %e, "spool writes failing: requests get 503 / UNAVAILABLE and /readyz answers 503 until a write succeeds");
                *state = Some((e.to_string(), size));
            }
            (Err(e), true) => *state = Some((e.to_string(), size)),
            (Ok(()), true) => {
                tracing::info!("spool writes succeed again");
                *state = None;
            }
            (Ok(()), false) => {}
        }
    }

    /// Records the outcome of an fsync; logs once per change of state.
    pub fn fsync_result(&self, what: &str, result: io::Result<()>) -> io::Result<()> {
        let mut state = self.fsync_error.lock().expect("health lock");
        match (&result, state.is_some()) {
            (Err(e), was) => {
                self.fsync_errors.inc();
                if !was {
                    tracing::error!(error = %e, what, "spool fsync failing: /readyz answers 503 until one succeeds");
                }
                *state = Some(format!("{what}: {e}"));
            }
            (Ok(()), true) => {
                tracing::info!("spool fsync succeeds again");
                *state = None;
            }
            (Ok(()), false) => {}
        }
        result
    }

    /// The problems to report on `/readyz` (empty: healthy).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((e, _)) = &*self.write_error.lock().expect("health lock") {
            out.push(format!("spool write failing: {e}"));
        }
        if let Some(e) = &*self.fsync_error.lock().expect("health lock") {
            out.push(format!("spool fsync failing: {e}"));
        }
        out
    }

    /// The size of the last failed write, while writes fail.
    pub fn failed_write_size(&self) -> Option<usize> {
        self.write_error
            .lock()
            .expect("health lock")
            .as_ref()
            .map(|(_, n)| *n)
    }

    pub fn clear_dir_dirty(&self) -> bool {
        self.dir_dirty.swap(false, Ordering::AcqRel)
    }
}

/// While writes fail, `/readyz` tries a write as large as the one that failed (synced, then
/// removed), so that the collector turns ready again once the disk has room for it, even with
/// no traffic routed to it — and not while only a smaller write would fit.
pub fn probe(dir: &Path, health: &Health) {
    let Some(size) = health.failed_write_size() else {
        return;
    };
    let size = size.max(4096);
    let path: PathBuf = dir.join("probe.tmp");
    let result = (|| {
        let mut f = private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            f.write_all(&chunk[..n])?;
            left -= n;
        }
        f.sync_data()
    })();
    let _ = fs::remove_file(&path);
    health.write_result(&result, size);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_make_the_spool_unhealthy_until_the_same_operation_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let h = Health::new(Counter::default());
        assert!(h.problems().is_empty());
        let full = io::Error::from_raw_os_error(28); // ENOSPC
        h.write_result(&Err(io::Error::new(full.kind(), full.to_string())), 100_000);
        assert_eq!(h.failed_write_size(), Some(100_000));
        assert!(
            h.problems()[0].contains("spool write failing"),
            "{:?}",
            h.problems()
        );
        // The probe writes as much as failed; here the disk has room, so health returns.
        probe(dir.path(), &h);
        assert!(h.problems().is_empty());
        assert!(!dir.path().join("probe.tmp").exists());

        let _ = h.fsync_result("spool segment", Err(io::Error::other("EIO")));
        let _ = h.fsync_result("spool segment", Err(io::Error::other("EIO")));
        assert_eq!(h.fsync_errors.get(), 2);
        assert!(h.problems()[0].contains("spool fsync failing: spool segment: EIO"));
        h.fsync_result("spool directory", Ok(())).unwrap();
        assert!(h.problems().is_empty());
    }

    #[test]
    fn new_files_and_directories_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        private_dir(&sub).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o700);
        let f = sub.join("f");
        private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&f)
            .unwrap();
        assert_eq!(mode(&f), 0o600);
        sync_dir(&sub).unwrap();
    }
}
