//! The write-ahead spool: accepted requests are appended to a segment file before they are
//! acknowledged; a segment is sealed when it reaches the batch size or age and becomes exactly
//! one ClickHouse insert, deduplicated by a token derived from its file name. So a batch is the
//! same after a crash as before it, and a replayed batch that had already landed is dropped by
//! ClickHouse, not stored twice.
//!
//! Segment file: `<seq:020>-<nonce:016x>.open` while written, `.seg` once sealed. Format 2 (this
//! version): the header `ORRSPOOL` + `u32 LE` version, then records
//! `[len u32 LE][crc32 u32 LE][payload]`, each payload a [`crate::rowbinary::record`] (rows
//! already in RowBinary). Format 1 (no header; payloads are protobuf
//! `ExportTraceServiceRequest`s) is still read, so a spool left by an older version is replayed;
//! a newer format is refused at start-up with a message. A torn tail (a crash mid-write) is cut
//! at start-up; it was never acknowledged.

pub mod health;
mod writer;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use self::health::{Health, private_dir, private_file, sync_dir};
use self::writer::{Unsynced, Writer, sync_every};

const HEADER: usize = 8;
const MAGIC: &[u8; 8] = b"ORRSPOOL";
/// The format this version writes.
pub const FORMAT: u32 = 2;
const FILE_HEADER: usize = MAGIC.len() + 4;

/// When spool writes are made durable against power loss (a process crash loses nothing in
/// every mode: an acknowledged append is in the kernel's page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    /// `fdatasync` before every acknowledgement (one per group commit).
    #[value(alias = "true")]
    Always,
    /// A background `fdatasync` of the spool every `--spool-fsync-interval`.
    Interval,
    /// Never; the kernel writes back on its own schedule.
    #[value(alias = "false")]
    Never,
}

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Above this many bytes on disk new requests are pushed back.
    pub max_bytes: u64,
    /// Seal a segment at this many spans…
    pub batch_max_spans: usize,
    /// …or this many bytes…
    pub batch_max_bytes: u64,
    /// …or this long after its first record, unless the sink is busy: while this many sealed
    /// segments wait or are being inserted, an open segment grows to its size bounds instead
    /// (larger inserts are cheaper for ClickHouse, and sealing sooner would not deliver sooner).
    pub batch_timeout: Duration,
    pub busy_backlog: usize,
    /// When writes are fsynced.
    pub fsync: Fsync,
    /// The period of [`Fsync::Interval`].
    pub fsync_interval: Duration,
    /// Counts failed fsyncs (the collector's `spool_fsync_errors` metric).
    pub fsync_errors: prometheus_client::metrics::counter::Counter,
}

/// A sealed segment: one batch.
#[derive(Debug, Clone)]
pub struct Segment {
    pub path: PathBuf,
    pub bytes: u64,
    /// The `insert_deduplication_token`.
    pub token: String,
    /// 1: protobuf records (an older version's spool); 2: RowBinary records.
    pub format: u32,
    /// Replayed from disk at start-up: a previous process may have inserted it before it
    /// stopped, so ClickHouse may deduplicate all of it (see the sink's row check).
    pub may_have_landed: bool,
}

/// The format of a segment file and where its records start.
fn read_format(path: &Path) -> Result<(u32, usize)> {
    let mut head = [0u8; FILE_HEADER];
    let mut f = File::open(path).with_context(|| format!("opening {path:?}"))?;
    let mut got = 0;
    while got < FILE_HEADER {
        match f.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    if got < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        // Format 1 had no header (and a first record of 0x5352524f bytes is impossible).
        return Ok((1, 0));
    }
    if got < FILE_HEADER {
        // Torn while being created: no record can follow.
        return Ok((FORMAT, FILE_HEADER));
    }
    let version = u32::from_le_bytes(head[MAGIC.len()..].try_into().expect("4 bytes"));
    anyhow::ensure!(
        version == FORMAT,
        "spool segment {path:?} has format {version}, but this collector reads formats 1 and \
         {FORMAT}: run the version that wrote it until the spool drains, or move the file away"
    );
    Ok((version, FILE_HEADER))
}

impl Segment {
    pub fn from_path(path: PathBuf) -> Result<Self> {
        let bytes = fs::metadata(&path)?.len();
        let (format, _) = read_format(&path)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            path,
            bytes,
            token: format!("orrery-{stem}"),
            format,
            may_have_landed: true,
        })
    }

    /// Reads the records one at a time, so a large segment is never held whole in memory.
    pub async fn reader(&self) -> Result<Records> {
        let file = tokio::fs::File::open(&self.path)
            .await
            .with_context(|| format!("opening {:?}", self.path))?;
        let mut file = tokio::io::BufReader::with_capacity(1 << 20, file);
        let start = if self.format == 1 { 0 } else { FILE_HEADER };
        let mut head = vec![0; start];
        file.read_exact(&mut head)
            .await
            .with_context(|| format!("segment {:?} is truncated", self.path))?;
        Ok(Records {
            file,
            path: self.path.clone(),
        })
    }

    /// The payloads of every record.
    pub fn read_records(&self) -> Result<Vec<Bytes>> {
        let data = fs::read(&self.path).with_context(|| format!("reading {:?}", self.path))?;
        let start = if self.format == 1 { 0 } else { FILE_HEADER };
        anyhow::ensure!(data.len() >= start, "segment {:?} is truncated", self.path);
        let (records, valid) = parse_records(&data, start);
        anyhow::ensure!(
            valid == data.len(),
            "segment {:?} is corrupt after byte {valid}",
            self.path
        );
        let data = Bytes::from(data);
        Ok(records
            .into_iter()
            .map(|(start, end)| data.slice(start..end))
            .collect())
    }
}

/// The records of a sealed segment, in order.
pub struct Records {
    file: tokio::io::BufReader<tokio::fs::File>,
    path: PathBuf,
}

impl Records {
    /// The next record's payload; `None` at the end. A record that does not check is an error
    /// (sealed segments were checked when they were recovered or written).
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        let mut head = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match self.file.read(&mut head[got..]).await? {
                0 if got == 0 => return Ok(None),
                0 => anyhow::bail!("segment {:?} ends inside a record header", self.path),
                n => got += n,
            }
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let mut payload = vec![0; len];
        self.file
            .read_exact(&mut payload)
            .await
            .with_context(|| format!("segment {:?} ends inside a record", self.path))?;
        anyhow::ensure!(
            crc32fast::hash(&payload) == crc,
            "segment {:?} has a record that fails its checksum",
            self.path
        );
        Ok(Some(payload.into()))
    }
}

/// Record boundaries of `data` and the length of its valid prefix.
fn parse_records(data: &[u8], start: usize) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::new();
    let mut pos = start;
    while data.len() - pos >= HEADER {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        let start = pos + HEADER;
        let Some(end) = start.checked_add(len).filter(|e| *e <= data.len()) else {
            break;
        };
        if crc32fast::hash(&data[start..end]) != crc {
            break;
        }
        out.push((start, end));
        pos = end;
    }
    (out, pos)
}

struct Append {
    payload: Bytes,
    spans: usize,
    done: oneshot::Sender<io::Result<()>>,
}

/// Handle to the spool: append (from receivers), byte accounting, and the queue of sealed
/// segments (for the sink).
#[derive(Clone)]
pub struct Spool {
    /// Taken out by [`Spool::close`], which ends the writer.
    tx: Arc<std::sync::RwLock<Option<mpsc::Sender<Append>>>>,
    bytes: Arc<AtomicU64>,
    /// Sealed segments not yet delivered or parked.
    backlog: Arc<AtomicUsize>,
    max_bytes: u64,
    dir: PathBuf,
    parked_dir: PathBuf,
    fsync: Fsync,
    health: Arc<Health>,
    /// Set when an append was refused for space, cleared once one fits again.
    pushing_back: Arc<std::sync::atomic::AtomicBool>,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    Full { bytes: u64, max: u64 },
    Closed,
    Io(io::Error),
}

impl Spool {
    /// Opens the spool directory, recovers what a previous process left (torn tails cut,
    /// open segments sealed, parked segments re-queued) and starts the writer thread.
    /// Returns the handle and the queue of sealed segments, oldest first.
    pub fn open(cfg: SpoolConfig) -> Result<(Spool, mpsc::UnboundedReceiver<Segment>)> {
        private_dir(&cfg.dir).with_context(|| format!("creating spool {:?}", cfg.dir))?;
        let lock = lock(&cfg.dir)?;
        let health = Arc::new(Health::new(cfg.fsync_errors.clone()));
        let parked_dir = cfg.dir.join("parked");
        private_dir(&parked_dir)?;
        private_dir(&cfg.dir.join(DEAD))?;
        for entry in fs::read_dir(&parked_dir)? {
            let p = entry?.path();
            if let Some(name) = p.file_name() {
                fs::rename(&p, cfg.dir.join(name))?;
            }
        }
        if cfg.fsync != Fsync::Never {
            sync_dir(&cfg.dir)?;
            sync_dir(&parked_dir)?;
        }
        let mut names: Vec<PathBuf> = fs::read_dir(&cfg.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("open" | "seg")))
            .collect();
        names.sort();
        let (seg_tx, seg_rx) = mpsc::unbounded_channel();
        let bytes = Arc::new(AtomicU64::new(0));
        let backlog = Arc::new(AtomicUsize::new(0));
        let mut next_seq = 0u64;
        for path in names {
            let seq: u64 = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.split('-').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            next_seq = next_seq.max(seq + 1);
            let path = if path.extension().is_some_and(|e| e == "open") {
                match recover_open(&path)? {
                    Some(p) => p,
                    None => continue,
                }
            } else {
                path
            };
            let seg = Segment::from_path(path)?;
            bytes.fetch_add(seg.bytes, Ordering::Relaxed);
            backlog.fetch_add(1, Ordering::Relaxed);
            tracing::info!(segment = ?seg.path, bytes = seg.bytes, "replaying spooled batch");
            let _ = seg_tx.send(seg);
        }
        let (tx, rx) = mpsc::channel::<Append>(1024);
        let unsynced = Arc::new(std::sync::Mutex::new(Unsynced::default()));
        let syncer = if cfg.fsync == Fsync::Interval {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let (unsynced, every) = (unsynced.clone(), cfg.fsync_interval);
            let (dir, health) = (cfg.dir.clone(), health.clone());
            std::thread::Builder::new()
                .name("spool-fsync".into())
                .spawn(move || sync_every(every, &unsynced, &dir, &health, stopped))?;
            Some(stop)
        } else {
            None
        };
        let writer = Writer {
            _lock: lock,
            cfg: cfg.clone(),
            next_seq,
            current: None,
            bytes: bytes.clone(),
            backlog: backlog.clone(),
            sealed: seg_tx,
            unsynced,
            health: health.clone(),
            _syncer: syncer,
        };
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok((
            Spool {
                tx: Arc::new(std::sync::RwLock::new(Some(tx))),
                bytes,
                backlog,
                max_bytes: cfg.max_bytes,
                dir: cfg.dir.clone(),
                parked_dir,
                fsync: cfg.fsync,
                health,
                pushing_back: Arc::default(),
            },
            seg_rx,
        ))
    }

    /// Bytes on disk (sealed, open and parked segments).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where permanently refused rows are set aside.
    pub fn dead_dir(&self) -> PathBuf {
        self.dir.join(DEAD)
    }

    /// Disk problems that make the collector unready (write or fsync failing).
    pub fn health_problems(&self) -> Vec<String> {
        self.health.problems()
    }

    /// While writes fail: tries a small write, so health recovers without traffic. Blocking.
    pub fn probe(&self) {
        health::probe(&self.dir, &self.health);
    }

    /// Makes an entry change in `dir` durable per the fsync policy: now (`always`), at the
    /// next interval (`interval`), or never.
    pub fn entries_changed(&self, dir: &Path) {
        match self.fsync {
            Fsync::Always => {
                let _ = self.health.fsync_result("spool directory", sync_dir(dir));
            }
            Fsync::Interval => self.health.dir_dirty.store(true, Ordering::Release),
            Fsync::Never => {}
        }
    }

    /// True while requests are being pushed back for space.
    pub fn is_full(&self) -> bool {
        self.pushing_back.load(Ordering::Relaxed) || self.bytes() >= self.max_bytes
    }

    /// Appends one record; returns once it is written (and synced, if configured).
    pub async fn append(&self, payload: Bytes, spans: usize) -> Result<(), AppendError> {
        let bytes = self.bytes();
        if bytes + payload.len() as u64 > self.max_bytes {
            self.pushing_back.store(true, Ordering::Relaxed);
            return Err(AppendError::Full {
                bytes,
                max: self.max_bytes,
            });
        }
        self.pushing_back.store(false, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        let tx = self.tx.read().expect("spool lock").clone();
        tx.ok_or(AppendError::Closed)?
            .send(Append {
                payload,
                spans,
                done,
            })
            .await
            .map_err(|_| AppendError::Closed)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AppendError::Io(e)),
            Err(_) => Err(AppendError::Closed),
        }
    }

    /// The batch is in ClickHouse: delete it.
    pub fn delivered(&self, seg: &Segment) -> io::Result<()> {
        fs::remove_file(&seg.path)?;
        self.entries_changed(&self.dir);
        self.bytes.fetch_sub(seg.bytes, Ordering::Relaxed);
        decrement(&self.backlog);
        self.pushing_back.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// The batch could not be delivered within its time to live: keep it on disk (it still
    /// counts against the spool size) under `parked/`, re-queued at the next start.
    pub fn park(&self, seg: &Segment) -> io::Result<PathBuf> {
        let to = self
            .parked_dir
            .join(seg.path.file_name().unwrap_or_default());
        fs::rename(&seg.path, &to)?;
        self.entries_changed(&self.parked_dir);
        self.entries_changed(&self.dir);
        decrement(&self.backlog);
        Ok(to)
    }

    /// Stops the writer after everything queued is written; the open segment is sealed.
    pub fn close(&self) {
        self.tx.write().expect("spool lock").take();
    }
}

/// The subdirectory of permanently refused rows (dead letters).
pub const DEAD: &str = "dead";

/// Takes the spool's lock file: one process per spool, since two writers would replay and
/// delete each other's batches. The kernel drops the lock when the process dies, so a kill -9
/// leaves no stale lock.
pub fn lock(dir: &Path) -> Result<File> {
    let lock = private_file()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .with_context(|| format!("opening {:?}", dir.join("LOCK")))?;
    lock.try_lock()
        .map_err(|_| anyhow::anyhow!("spool directory {dir:?} is in use by another collector"))?;
    Ok(lock)
}

/// Writes a complete segment file (header and `records`) at `path` through a temporary name,
/// synced, so that it either exists whole or not at all.
pub fn write_segment_file(path: &Path, records: &[&[u8]]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&FORMAT.to_le_bytes());
        f.write_all(&head)?;
        for r in records {
            let len = u32::try_from(r.len()).map_err(io::Error::other)?;
            f.write_all(&len.to_le_bytes())?;
            f.write_all(&crc32fast::hash(r).to_le_bytes())?;
            f.write_all(r)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Blocking `Spool::delivered` for a segment the sink's worker owns, off the async workers.
pub async fn delivered_off_thread(spool: &Spool, seg: &Segment) -> io::Result<()> {
    let (s, sg) = (spool.clone(), seg.clone());
    tokio::task::spawn_blocking(move || s.delivered(&sg))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

fn decrement(n: &AtomicUsize) {
    let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(1))
    });
}

/// Cuts a torn tail and seals an `.open` segment; removes it if it holds no record.
pub fn recover_open(path: &Path) -> Result<Option<PathBuf>> {
    let (_, start) = read_format(path)?;
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let (records, valid) = parse_records(&data, start.min(data.len()));
    if records.is_empty() {
        fs::remove_file(path)?;
        return Ok(None);
    }
    if valid < data.len() {
        tracing::warn!(segment = ?path, cut = data.len() - valid, "cutting torn spool tail");
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(valid as u64)?;
        f.sync_all()?;
    }
    let sealed = path.with_extension("seg");
    fs::rename(path, &sealed)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(Some(sealed))
}

#[cfg(test)]
mod tests;
