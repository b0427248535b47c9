//! Ships sealed spool segments to ClickHouse: one segment = one RowBinary insert (the bytes the
//! receiver encoded, sent unchanged) carrying an
//! `insert_deduplication_token`, retried with exponential backoff and full jitter until the
//! batch's time to live runs out; then the segment is parked on disk (never dropped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rand::Rng;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::rowbinary;
use crate::spool::{Segment, Spool};

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub concurrency: usize,
    pub ttl: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

pub async fn run(
    cfg: SinkConfig,
    client: clickhouse::Client,
    spool: Spool,
    queue: mpsc::UnboundedReceiver<Segment>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let queue = Arc::new(Mutex::new(queue));
    let workers: Vec<_> = (0..cfg.concurrency.max(1))
        .map(|_| {
            let (cfg, client, spool, queue, metrics, stop) = (
                cfg.clone(),
                client.clone(),
                spool.clone(),
                queue.clone(),
                metrics.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let next = { queue.lock().await.recv().await };
                    let Some(seg) = next else { break };
                    deliver(&cfg, &client, &spool, &seg, &metrics, &stop).await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
}

async fn deliver(
    cfg: &SinkConfig,
    client: &clickhouse::Client,
    spool: &Spool,
    seg: &Segment,
    metrics: &Metrics,
    stop: &CancellationToken,
) {
    let deadline = Instant::now() + cfg.ttl;
    let mut backoff = cfg.backoff_initial;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        match insert(client, seg).await {
            Ok(spans) => {
                metrics
                    .insert_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.batch_spans.observe(spans as f64);
                metrics.spans_inserted.inc_by(spans as u64);
                metrics.batches_inserted.inc();
                // Off the async workers: unlinking a segment of tens of MB drops its cached
                // pages, milliseconds that would otherwise delay requests.
                let (s, sg) = (spool.clone(), seg.clone());
                let removed = tokio::task::spawn_blocking(move || s.delivered(&sg))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                if let Err(e) = removed {
                    tracing::error!(segment = ?seg.path, error = %e, "removing delivered segment failed");
                }
                metrics.spool_bytes.set(spool.bytes());
                tracing::debug!(segment = ?seg.path, spans, attempt, "batch inserted");
                return;
            }
            Err(e) => {
                let now = Instant::now();
                if now >= deadline || (stop.is_cancelled() && attempt > 1) {
                    metrics.batches_parked.inc();
                    match spool.park(seg) {
                        Ok(to) => tracing::error!(
                            segment = ?to, error = %format!("{e:#}"), attempt,
                            "batch not delivered within its time to live; parked on disk, retried at the next start"
                        ),
                        Err(pe) => {
                            tracing::error!(segment = ?seg.path, error = %pe, "parking batch failed; it stays in the spool")
                        }
                    }
                    return;
                }
                metrics.batch_retries.inc();
                // Full jitter: a random wait up to the current backoff, never past the deadline.
                let wait =
                    Duration::from_secs_f64(rand::rng().random_range(0.0..=backoff.as_secs_f64()))
                        .min(deadline - now);
                tracing::warn!(segment = ?seg.path, error = %format!("{e:#}"), attempt, retry_in = ?wait, "insert failed; retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
        }
    }
}

/// One insert of a whole segment: its records' RowBinary bytes, sent as they are on disk
/// (format 1 records, protobuf from an older version's spool, are converted first).
async fn insert(client: &clickhouse::Client, seg: &Segment) -> Result<usize> {
    let mut records = seg.reader().await?;
    let mut insert = client
        .insert_formatted_with(rowbinary::INSERT_SQL)
        .with_setting("insert_deduplication_token", seg.token.clone());
    let mut spans = 0;
    // Records are usually whole requests (hundreds of KiB) and go out as slices of the file;
    // small ones are gathered so the body is not sent in tiny frames.
    let mut small = Vec::new();
    while let Some(record) = records.next().await? {
        let (count, rows) = if seg.format == 1 {
            let req = ExportTraceServiceRequest::decode(record)
                .with_context(|| format!("decoding a record of {:?}", seg.path))?;
            let mut rows = Vec::new();
            let count = rowbinary::encode(&req, &mut rows);
            (count, Bytes::from(rows))
        } else {
            rowbinary::split_record(&record)
                .with_context(|| format!("a record of {:?} is too short", seg.path))?
        };
        spans += count;
        if rows.len() >= SEND_CHUNK {
            if !small.is_empty() {
                insert.send(Bytes::from(std::mem::take(&mut small))).await?;
            }
            insert.send(rows).await?;
        } else {
            small.extend_from_slice(&rows);
            if small.len() >= SEND_CHUNK {
                insert.send(Bytes::from(std::mem::take(&mut small))).await?;
            }
        }
    }
    if !small.is_empty() {
        insert.send(Bytes::from(small)).await?;
    }
    insert.end().await?;
    Ok(spans)
}

const SEND_CHUNK: usize = 256 * 1024;
