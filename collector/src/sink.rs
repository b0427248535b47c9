//! Ships sealed spool segments to ClickHouse: one segment = one RowBinary insert (the bytes the
//! receiver encoded, sent unchanged) carrying an `insert_deduplication_token`.
//!
//! A segment is deleted only once ClickHouse confirms its rows (`written_rows` of
//! `X-ClickHouse-Summary`, see [`crate::chhttp`]). Retryable failures are retried with
//! exponential backoff and full jitter until the batch's time to live runs out; then the
//! segment is parked on disk (never dropped). Permanent failures (ClickHouse refuses the data)
//! free the slot at once: the segment is bisected so the good rows land, and only the rows
//! that fail on their own are set aside as dead letters ([`crate::deadletter`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use orrery_store::SPANS_TABLE;
use prost::Message;
use rand::Rng;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::chhttp::{BodySender, InsertClient, InsertError, Kind};
use crate::deadletter::{self, Why};
use crate::metrics::{Metrics, Reason};
use crate::rowbinary;
use crate::spool::{Segment, Spool, delivered_off_thread};

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub concurrency: usize,
    pub ttl: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// `max_partitions_per_insert_block` sent with every insert (0: no limit); see
    /// [`partitions_setting`].
    pub max_partitions_per_insert: u64,
    /// Most inserts spent isolating the bad rows of one batch; what is still unresolved then
    /// is set aside in ranges, not row by row.
    pub bisect_budget: usize,
}

/// The `max_partitions_per_insert_block` for a retention (days; 0 keeps forever). The
/// receivers only accept spans from the retention (plus the future slack), so a validated
/// batch spans at most `retention + 2` days: the limit is raised to cover that (ClickHouse's
/// default of 100 would refuse a retention of 98 days or more) but kept as a guard against
/// batches that were never validated (an older version's spool). With retention 0 nothing
/// bounds the dates, so the limit is off: a batch over N dates then writes N parts, which
/// the batch bounds (--batch-max-spans) keep finite. See docs/decisions.md.
pub fn partitions_setting(retention_days: u32) -> u64 {
    if retention_days == 0 {
        0
    } else {
        (u64::from(retention_days) + 3).max(100)
    }
}

/// What the sink needs to place a batch; shared by the collector's workers and `orrery spool
/// replay`.
pub struct Placer {
    pub cfg: SinkConfig,
    pub client: InsertClient,
    /// For reading back a sample of a batch whose retry reported fewer rows than sent.
    pub reader: clickhouse::Client,
    pub metrics: Arc<Metrics>,
    pub dead_dir: PathBuf,
    /// One bisection at a time: it holds a whole batch in memory.
    bisecting: Semaphore,
}

/// What became of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed {
    /// All rows are in ClickHouse.
    Inserted { spans: usize },
    /// ClickHouse refused some rows permanently: the rest landed, those are in `dead`.
    SetAside {
        landed: usize,
        dead: usize,
        dead_path: PathBuf,
    },
    /// Not delivered within the time to live (or stopping): the batch stays as it is.
    NotDelivered { error: String },
}

impl Placer {
    pub fn new(
        cfg: SinkConfig,
        client: InsertClient,
        reader: clickhouse::Client,
        metrics: Arc<Metrics>,
        dead_dir: PathBuf,
    ) -> Self {
        Self {
            cfg,
            client,
            reader,
            metrics,
            dead_dir,
            bisecting: Semaphore::new(1),
        }
    }

    fn settings(&self, token: &str) -> Vec<(&'static str, String)> {
        vec![
            ("insert_deduplication_token", token.to_string()),
            (
                "max_partitions_per_insert_block",
                self.cfg.max_partitions_per_insert.to_string(),
            ),
            // The summary must count the rows: an asynchronous insert answers before they
            // are written (and reports 0).
            ("async_insert", "0".to_string()),
            // A replayed batch must not reach the materialized views (the graph's call table,
            // the minute counts, the trace-id lookup) twice either: each view's block is
            // deduplicated by a token derived from this one (and, single-node, within the
            // view tables' own deduplication window — schema v8).
            (
                "deduplicate_blocks_in_dependent_materialized_views",
                "1".to_string(),
            ),
        ]
    }

    /// Delivers a batch: retries what may pass later, sets aside what never will.
    pub async fn place(&self, seg: &Segment, stop: &CancellationToken) -> Placed {
        let deadline = Instant::now() + self.cfg.ttl;
        let mut backoff = self.cfg.backoff_initial;
        let mut attempt = 0u32;
        let mut may_have_landed = seg.may_have_landed;
        loop {
            attempt += 1;
            let started = Instant::now();
            let spans = AtomicUsize::new(0);
            let result = self
                .client
                .insert(crate::row::insert_sql(), &self.settings(&seg.token), |tx| {
                    stream_segment(seg, tx, &spans)
                })
                .await;
            let spans = spans.load(Ordering::Relaxed);
            let error = match result {
                Ok(written) if written >= spans as u64 => {
                    self.metrics
                        .insert_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.batch_spans.observe(spans as f64);
                    self.metrics.spans_inserted.inc_by(spans as u64);
                    self.metrics.batches_inserted.inc();
                    tracing::debug!(segment = ?seg.path, spans, attempt, "batch inserted");
                    return Placed::Inserted { spans };
                }
                // Fewer rows than sent. When an earlier attempt (or an earlier process) may
                // have inserted this batch, ClickHouse drops the repeat by its deduplication
                // token and reports 0 written rows (or fewer, if only some of its blocks had
                // landed). That is only believed once a sample of the batch's rows is read back
                // from ClickHouse: a silent loss must not pass for a deduplication.
                Ok(written) if may_have_landed => match self.sample_present_within(seg).await {
                    Ok(true) => {
                        self.metrics.batch_spans.observe(spans as f64);
                        self.metrics.spans_inserted.inc_by(spans as u64);
                        self.metrics.batches_inserted.inc();
                        tracing::info!(segment = ?seg.path, spans, written, attempt, "batch was already in ClickHouse (deduplicated retry, sample read back)");
                        return Placed::Inserted { spans };
                    }
                    Ok(false) => InsertError {
                        kind: Kind::Permanent { bisect: true },
                        code: None,
                        message: format!(
                            "ClickHouse reported {written} rows written of {spans} sent, and the batch's rows are not there"
                        ),
                        may_have_landed: false,
                        label: "unconfirmed",
                    },
                    Err(e) => InsertError {
                        kind: Kind::Retryable,
                        code: None,
                        message: format!(
                            "ClickHouse reported {written} rows written of {spans} sent; reading a sample back failed: {e:#}"
                        ),
                        may_have_landed: true,
                        label: "unconfirmed",
                    },
                },
                Ok(written) => InsertError {
                    kind: Kind::Permanent { bisect: true },
                    code: None,
                    message: format!(
                        "ClickHouse reported {written} rows written of {spans} sent, without an error"
                    ),
                    may_have_landed: false,
                    label: "unconfirmed",
                },
                Err(e) => e,
            };
            self.failed(&error);
            may_have_landed |= error.may_have_landed;
            if let Kind::Permanent { bisect } = error.kind {
                return self.set_aside(seg, error, bisect, deadline).await;
            }
            let now = Instant::now();
            if now >= deadline || (stop.is_cancelled() && attempt > 1) {
                return Placed::NotDelivered {
                    error: error.to_string(),
                };
            }
            self.metrics.batch_retries.inc();
            let wait = jitter(backoff).min(deadline - now);
            tracing::warn!(segment = ?seg.path, error = %error, attempt, retry_in = ?wait, "insert failed; retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        }
    }

    /// [`Self::sample_present`], bounded like an insert (a hung server must not hold the slot).
    async fn sample_present_within(&self, seg: &Segment) -> anyhow::Result<bool> {
        tokio::time::timeout(self.client.timeout(), self.sample_present(seg))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", self.client.timeout()))?
    }

    /// Whether a sample of the batch's rows (up to 16, spread over it) is in ClickHouse.
    async fn sample_present(&self, seg: &Segment) -> anyhow::Result<bool> {
        let path = seg.path.clone();
        let (ids, lo, hi) = tokio::task::spawn_blocking(move || {
            let (data, rows) = deadletter::load_rows(&path)?;
            let step = (rows.len() / 16).max(1);
            let picked: Vec<_> = rows.iter().step_by(step).take(16).collect();
            let ids: Vec<(String, String)> = picked
                .iter()
                .filter_map(|r| rowbinary::row_ids(&data[r.range.clone()]))
                .collect();
            let lo = picked.iter().map(|r| r.timestamp).min().unwrap_or(0);
            let hi = picked.iter().map(|r| r.timestamp).max().unwrap_or(0);
            anyhow::Ok((ids, lo, hi))
        })
        .await??;
        if ids.is_empty() {
            return Ok(true);
        }
        let (traces, spans): (Vec<String>, Vec<String>) = ids.iter().cloned().unzip();
        let found: u64 = self
            .reader
            .query(&format!(
                "SELECT uniqExact(TraceId, SpanId) FROM {SPANS_TABLE} \
                 WHERE Timestamp >= fromUnixTimestamp64Nano(?) AND Timestamp <= fromUnixTimestamp64Nano(?) \
                 AND TraceId IN ? AND SpanId IN ?",
            ))
            .bind(lo)
            .bind(hi)
            .bind(traces)
            .bind(spans)
            .fetch_one()
            .await?;
        Ok(found >= ids.len() as u64)
    }

    fn failed(&self, e: &InsertError) {
        self.metrics
            .insert_failures
            .get_or_create(&Reason { reason: e.label })
            .inc();
    }

    /// ClickHouse refuses the batch for good: land what it accepts, set aside the rest.
    async fn set_aside(
        &self,
        seg: &Segment,
        first: InsertError,
        bisect: bool,
        deadline: Instant,
    ) -> Placed {
        let _one = self.bisecting.acquire().await;
        let path = seg.path.clone();
        let loaded = tokio::task::spawn_blocking(move || deadletter::load_rows(&path)).await;
        let (data, rows) = match loaded {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                return Placed::NotDelivered {
                    error: format!("{first}; and the batch cannot be split: {e:#}"),
                };
            }
            Err(e) => {
                return Placed::NotDelivered {
                    error: format!("{first}; {e}"),
                };
            }
        };
        let n = rows.len();
        // Ranges of rows (indexes into `rows`) still failing, with their error.
        let mut dead: Vec<(usize, usize, InsertError)> = Vec::new();
        let mut landed = 0;
        if bisect && n > 0 {
            self.metrics.batches_bisected.inc();
            let mut budget = self.cfg.bisect_budget;
            let mut stack = vec![(0, n, first.clone())];
            while let Some((a, b, err)) = stack.pop() {
                if b - a == 1 || budget == 0 {
                    dead.push((a, b, err));
                    continue;
                }
                let mid = a + (b - a) / 2;
                for (x, y) in [(mid, b), (a, mid)] {
                    budget = budget.saturating_sub(1);
                    let token = format!("{}-rows-{x}-{y}", seg.token);
                    let bytes = data.slice(rows[x].range.start..rows[y - 1].range.end);
                    match self.insert_rows(&token, bytes, y - x, deadline).await {
                        Ok(()) => landed += y - x,
                        Err(e) if matches!(e.kind, Kind::Permanent { .. }) => stack.push((x, y, e)),
                        // Past the time to live while ClickHouse is unreachable: set aside
                        // with the error (replayable), rather than hold the slot longer.
                        Err(e) => dead.push((x, y, e)),
                    }
                }
            }
        } else {
            dead.push((0, n, first.clone()));
        }
        dead.sort_by_key(|d| d.0);
        let dead_spans: usize = dead.iter().map(|(a, b, _)| b - a).sum();
        self.metrics.spans_inserted.inc_by(landed as u64);
        if dead_spans == 0 {
            tracing::info!(segment = ?seg.path, spans = n, error = %first, "batch refused whole, but every part of it was accepted: all rows inserted");
            return Placed::Inserted { spans: n };
        }
        let mut rows_out = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        for (a, b, e) in &dead {
            rows_out.extend_from_slice(&data[rows[*a].range.start..rows[*b - 1].range.end]);
            let e = e.to_string();
            if errors.len() < 5 && !errors.contains(&e) {
                errors.push(e);
            }
        }
        let stem = seg
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("batch")
            .to_string();
        let name = if stem.ends_with("-dead") {
            stem.clone()
        } else {
            format!("{stem}-dead")
        };
        let dir = self.dead_dir.clone();
        let code = dead[0].2.code;
        let written = tokio::task::spawn_blocking(move || {
            let why = Why {
                batch: &stem,
                batch_spans: n,
                code,
                errors,
                isolated: bisect,
            };
            deadletter::write(&dir, &name, &rows_out, dead_spans, &why)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(dead_path) => {
                self.metrics.dead_letter_spans.inc_by(dead_spans as u64);
                tracing::error!(
                    segment = ?seg.path, dead_letter = ?dead_path, spans_set_aside = dead_spans,
                    spans_inserted = landed, error = %first,
                    "ClickHouse refuses rows of a batch permanently: they are set aside as a dead letter (`orrery spool inspect`, `orrery spool replay` once the cause is fixed)"
                );
                Placed::SetAside {
                    landed,
                    dead: dead_spans,
                    dead_path,
                }
            }
            Err(e) => Placed::NotDelivered {
                error: format!("{first}; writing the dead letter failed: {e}"),
            },
        }
    }

    /// Inserts some rows of a batch being split, retrying what is retryable until `deadline`.
    async fn insert_rows(
        &self,
        token: &str,
        rows: Bytes,
        count: usize,
        deadline: Instant,
    ) -> Result<(), InsertError> {
        let mut backoff = self.cfg.backoff_initial;
        let mut may_have_landed = false;
        loop {
            let body = rows.clone();
            let result = self
                .client
                .insert(
                    crate::row::insert_sql(),
                    &self.settings(token),
                    |tx| async move { tx.send(body).await },
                )
                .await;
            let e = match result {
                Ok(w) if w >= count as u64 || may_have_landed => return Ok(()),
                Ok(w) => InsertError {
                    kind: Kind::Permanent { bisect: true },
                    code: None,
                    message: format!(
                        "ClickHouse reported {w} rows written of {count} sent, without an error"
                    ),
                    may_have_landed: false,
                    label: "unconfirmed",
                },
                Err(e) => e,
            };
            self.failed(&e);
            may_have_landed |= e.may_have_landed;
            let now = Instant::now();
            if matches!(e.kind, Kind::Permanent { .. }) || now >= deadline {
                return Err(e);
            }
            tokio::time::sleep(jitter(backoff).min(deadline - now)).await;
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        }
    }

    /// Refreshes the dead-letter gauges from `dead/`.
    pub fn refresh_dead_letters(&self) -> deadletter::Summary {
        refresh_dead_letters(&self.metrics, &self.dead_dir)
    }
}

/// Sets the dead-letter gauges from what `dir` holds.
pub fn refresh_dead_letters(metrics: &Metrics, dir: &Path) -> deadletter::Summary {
    let s = deadletter::summary(dir);
    metrics.dead_letter_segments.set(s.segments);
    metrics.dead_letter_spans_stored.set(s.spans);
    metrics.dead_letter_bytes.set(s.bytes);
    s
}

fn jitter(backoff: Duration) -> Duration {
    Duration::from_secs_f64(rand::rng().random_range(0.0..=backoff.as_secs_f64()))
}

pub async fn run(
    placer: Arc<Placer>,
    spool: Spool,
    queue: mpsc::UnboundedReceiver<Segment>,
    stop: CancellationToken,
) {
    let queue = Arc::new(Mutex::new(queue));
    let workers: Vec<_> = (0..placer.cfg.concurrency.max(1))
        .map(|_| {
            let (placer, spool, queue, stop) =
                (placer.clone(), spool.clone(), queue.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let next = { queue.lock().await.recv().await };
                    let Some(seg) = next else { break };
                    deliver(&placer, &spool, &seg, &stop).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

async fn deliver(placer: &Placer, spool: &Spool, seg: &Segment, stop: &CancellationToken) {
    match placer.place(seg, stop).await {
        Placed::Inserted { .. } | Placed::SetAside { .. } => {
            // Off the async workers: unlinking a segment of tens of MB drops its cached
            // pages, milliseconds that would otherwise delay requests.
            if let Err(e) = delivered_off_thread(spool, seg).await {
                tracing::error!(segment = ?seg.path, error = %e, "removing delivered segment failed");
            }
            placer.metrics.spool_bytes.set(spool.bytes());
            let dead = placer.refresh_dead_letters();
            if dead.segments > 0 {
                tracing::debug!(
                    segments = dead.segments,
                    spans = dead.spans,
                    "dead letters present"
                );
            }
        }
        Placed::NotDelivered { error } => {
            placer.metrics.batches_parked.inc();
            match spool.park(seg) {
                Ok(to) => tracing::error!(
                    segment = ?to, error = %error,
                    "batch not delivered within its time to live; parked on disk, retried at the next start"
                ),
                Err(pe) => {
                    tracing::error!(segment = ?seg.path, error = %pe, "parking batch failed; it stays in the spool")
                }
            }
        }
    }
}

/// Streams a segment's records as the insert body: the RowBinary bytes as they are on disk
/// (format 1 records, protobuf from an older version's spool, are converted first). Counts
/// the spans sent into `spans`.
async fn stream_segment(seg: &Segment, tx: BodySender, spans: &AtomicUsize) -> anyhow::Result<()> {
    let mut records = seg.reader().await?;
    // Records are usually whole requests (hundreds of KiB) and go out as slices of the file;
    // small ones are gathered so the body is not sent in tiny frames.
    let mut small = Vec::new();
    while let Some(record) = records.next().await? {
        let (count, rows) = if seg.format == 1 {
            let req = ExportTraceServiceRequest::decode(record)
                .with_context(|| format!("decoding a record of {:?}", seg.path))?;
            let mut rows = Vec::new();
            // Cut at receipt by the version that spooled them.
            let count = rowbinary::encode(&req, usize::MAX, &mut rows);
            (count, Bytes::from(rows))
        } else {
            rowbinary::split_record(&record)
                .with_context(|| format!("a record of {:?} is too short", seg.path))?
        };
        spans.fetch_add(count, Ordering::Relaxed);
        if rows.len() >= SEND_CHUNK {
            if !small.is_empty() {
                tx.send(Bytes::from(std::mem::take(&mut small))).await?;
            }
            tx.send(rows).await?;
        } else {
            small.extend_from_slice(&rows);
            if small.len() >= SEND_CHUNK {
                tx.send(Bytes::from(std::mem::take(&mut small))).await?;
            }
        }
    }
    if !small.is_empty() {
        tx.send(Bytes::from(small)).await?;
    }
    Ok(())
}

const SEND_CHUNK: usize = 256 * 1024;
