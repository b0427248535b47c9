//! The spool's writer thread: group-commits appends to the open segment, seals segments by
//! size or age, and (with `--spool-fsync=interval`) the background syncer.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::health::{Health, private_file, sync_dir};
use super::{Append, FORMAT, Fsync, HEADER, MAGIC, Segment, SpoolConfig};

pub(super) struct Open {
    pub(super) file: File,
    pub(super) path: PathBuf,
    /// `<seq>-<nonce>`: names the segment and its dedup token.
    pub(super) stem: String,
    pub(super) bytes: u64,
    pub(super) spans: usize,
    pub(super) since: Instant,
}

pub(super) struct Writer {
    /// Held (locked) for as long as the writer runs.
    pub(super) _lock: File,
    pub(super) cfg: SpoolConfig,
    pub(super) next_seq: u64,
    pub(super) current: Option<Open>,
    pub(super) bytes: Arc<AtomicU64>,
    pub(super) backlog: Arc<AtomicUsize>,
    pub(super) sealed: mpsc::UnboundedSender<Segment>,
    /// What the interval syncer has yet to sync.
    pub(super) unsynced: Arc<std::sync::Mutex<Unsynced>>,
    pub(super) health: Arc<Health>,
    /// Dropped with the writer: the syncer then syncs once more and ends.
    pub(super) _syncer: Option<std::sync::mpsc::Sender<()>>,
}

/// Files written since the last interval sync: the open segment and those sealed since.
#[derive(Default)]
pub(super) struct Unsynced {
    pub(super) open: Option<File>,
    pub(super) sealed: Vec<File>,
}

/// [`Fsync::Interval`]: `fdatasync` what was written, every `every`, off the request path
/// (the writer never waits for the disk).
pub(super) fn sync_every(
    every: Duration,
    unsynced: &std::sync::Mutex<Unsynced>,
    dir: &Path,
    health: &Health,
    stop: std::sync::mpsc::Receiver<()>,
) {
    loop {
        let last = matches!(
            stop.recv_timeout(every),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
        let files: Vec<File> = {
            let mut u = unsynced.lock().expect("spool sync lock");
            let mut files = std::mem::take(&mut u.sealed);
            files.extend(u.open.as_ref().and_then(|f| f.try_clone().ok()));
            files
        };
        let mut result = Ok(());
        for f in files {
            if let Err(e) = f.sync_data() {
                result = Err(e);
            }
        }
        // After the files: a segment's directory entry is only useful once its data is there.
        if health.clear_dir_dirty()
            && let Err(e) = sync_dir(dir)
        {
            health.dir_dirty.store(true, Ordering::Release);
            result = Err(e);
        }
        let _ = health.fsync_result("spool (interval)", result);
        if last {
            return;
        }
    }
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Append>) {
        // Only for waiting on the channel with a timeout (woken by the sender, no polling).
        let timer = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "spool writer cannot start");
                return;
            }
        };
        let mut pending: Vec<Append> = Vec::new();
        loop {
            // Wait for work, or until the open segment is due to be sealed.
            let first = match &self.current {
                Some(open) => {
                    let due = open.since + self.cfg.batch_timeout;
                    // Past due with a busy sink: look again shortly.
                    let wait = due
                        .checked_duration_since(Instant::now())
                        .unwrap_or(Duration::from_millis(20));
                    match recv_timeout(&timer, &mut rx, wait) {
                        Recv::Item(a) => Some(a),
                        Recv::Timeout => None,
                        Recv::Closed => break,
                    }
                }
                None => match rx.blocking_recv() {
                    Some(a) => Some(a),
                    None => break,
                },
            };
            let Some(first) = first else {
                if self.seal_due() {
                    self.seal_logged();
                }
                continue;
            };
            pending.push(first);
            while pending.len() < 256 {
                match rx.try_recv() {
                    Ok(a) => pending.push(a),
                    Err(_) => break,
                }
            }
            let result = self.write_all(&pending);
            let size = pending.iter().map(|a| a.payload.len() + HEADER).sum();
            self.health.write_result(&result, size);
            for a in pending.drain(..) {
                let _ = a.done.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                });
            }
            if self.seal_due() {
                self.seal_logged();
            }
        }
        self.seal_logged();
    }

    /// The open segment is full, or old enough while the sink has room for it.
    fn seal_due(&self) -> bool {
        let Some(open) = &self.current else {
            return false;
        };
        open.spans >= self.cfg.batch_max_spans
            || open.bytes >= self.cfg.batch_max_bytes
            || (open.since.elapsed() >= self.cfg.batch_timeout
                && self.backlog.load(Ordering::Relaxed) < self.cfg.busy_backlog)
    }

    fn write_all(&mut self, batch: &[Append]) -> io::Result<()> {
        if self.current.is_none() {
            self.current = Some(self.create()?);
        }
        let open = self.current.as_mut().expect("open segment");
        let mut buf = Vec::with_capacity(batch.iter().map(|a| a.payload.len() + HEADER).sum());
        let mut spans = 0;
        for a in batch {
            buf.extend_from_slice(&(a.payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&a.payload).to_le_bytes());
            buf.extend_from_slice(&a.payload);
            spans += a.spans;
        }
        if let Err(e) = open.file.write_all(&buf) {
            // Leave no half record behind that a later record would follow.
            let _ = open.file.set_len(open.bytes);
            return Err(e);
        }
        if self.cfg.fsync == Fsync::Always {
            let synced = self
                .health
                .fsync_result("spool segment", open.file.sync_data());
            if let Err(e) = synced {
                // Not acknowledged; cut it so a retry does not store it twice.
                let _ = open.file.set_len(open.bytes);
                return Err(e);
            }
        }
        open.bytes += buf.len() as u64;
        open.spans += spans;
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn create(&mut self) -> io::Result<Open> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let nonce: u64 = rand::random();
        let stem = format!("{seq:020}-{nonce:016x}");
        let path = self.cfg.dir.join(format!("{stem}.open"));
        let mut file = private_file().create_new(true).append(true).open(&path)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&FORMAT.to_le_bytes());
        if let Err(e) = file.write_all(&header) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        match self.cfg.fsync {
            Fsync::Always => {
                self.health
                    .fsync_result("spool directory", sync_dir(&self.cfg.dir))?;
            }
            Fsync::Interval => self.health.dir_dirty.store(true, Ordering::Release),
            Fsync::Never => {}
        }
        self.bytes.fetch_add(header.len() as u64, Ordering::Relaxed);
        if self.cfg.fsync == Fsync::Interval {
            self.unsynced.lock().expect("spool sync lock").open = Some(file.try_clone()?);
        }
        Ok(Open {
            file,
            path,
            stem,
            bytes: header.len() as u64,
            spans: 0,
            since: Instant::now(),
        })
    }

    fn seal_logged(&mut self) {
        if let Err(e) = self.seal() {
            tracing::error!(error = %e, "sealing spool segment failed; it is replayed at the next start");
        }
    }

    fn seal(&mut self) -> io::Result<()> {
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        match self.cfg.fsync {
            Fsync::Always => open.file.sync_all()?,
            Fsync::Interval => {
                let mut u = self.unsynced.lock().expect("spool sync lock");
                u.open = None;
                u.sealed.push(open.file);
            }
            Fsync::Never => drop(open.file),
        }
        let sealed = open.path.with_extension("seg");
        fs::rename(&open.path, &sealed)?;
        match self.cfg.fsync {
            Fsync::Always => {
                let _ = self
                    .health
                    .fsync_result("spool directory", sync_dir(&self.cfg.dir));
            }
            Fsync::Interval => self.health.dir_dirty.store(true, Ordering::Release),
            Fsync::Never => {}
        }
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let _ = self.sealed.send(Segment {
            path: sealed,
            bytes: open.bytes,
            token: format!("orrery-{}", open.stem),
            format: FORMAT,
            may_have_landed: false,
        });
        Ok(())
    }
}

enum Recv {
    Item(Append),
    Timeout,
    Closed,
}

/// `blocking_recv` with a timeout (the writer is a plain thread: file I/O stays off the async
/// workers).
fn recv_timeout(
    timer: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<Append>,
    wait: Duration,
) -> Recv {
    // The timer is created inside the runtime.
    match timer.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
        Ok(Some(a)) => Recv::Item(a),
        Ok(None) => Recv::Closed,
        Err(_) => Recv::Timeout,
    }
}
