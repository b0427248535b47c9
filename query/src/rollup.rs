//! The rollup job: per-minute edge and node rows for closed minutes, so long windows do not
//! re-join spans. Every query replica runs it; it is idempotent.
//!
//! Each run counts spans per minute over the lookback and compares with the span count each
//! minute's latest marker saw. A minute without a marker, or whose count changed (late spans),
//! is recomputed from spans — and, when spans arrived late, so are the two minutes after it,
//! since a late parent changes the edges of children that started after it. A recomputation
//! writes all rows with a fresh `ComputedAt` and the marker last; readers use only the latest
//! marker's rows, so two replicas recomputing the same minute converge on the same answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::GraphArgs;
use crate::graph::fetch::markers::{HOUR_NS, MINUTE_NS};
use crate::graph::fetch::{MinuteMarker, Rolled};
use crate::metrics;
use orrery_store::computed_at::ComputedAtClock;
use orrery_store::graph_rules::{self as rules, CallSource};

pub mod backfill;
pub mod days;
mod hours;
mod merge;
mod rows;
mod slots;
pub use slots::{SLOT_DELAY_NS, SLOT_NS, SlotPass, next_slot_pass};
/// Minutes recomputed per run at most (keeps one run bounded; backfill continues next run).
const MAX_MINUTES_PER_RUN: usize = 1440;
/// The longest wait between two slot passes (half a slot): a pass also runs when a slot can
/// close ([`SlotPass::next_ns`]), and between those this notices late spans in closed slots.
const SLOT_TICK: Duration = Duration::from_secs(5);
/// The shortest wait between two slot passes (one wakes a millisecond after a span settles;
/// this keeps a clock step or a poison span time from spinning the loop).
const SLOT_TICK_MIN: Duration = Duration::from_millis(100);
/// Minutes computed by one set of queries.
const MINUTES_PER_BATCH: usize = 60;
/// Minutes one set of queries over `otel_traces` spans at most (a batch over the spans reads
/// its whole range, so scattered late minutes are not joined across hours of spans).
const SPANS_BATCH_NS: i64 = HOUR_NS;
/// Every this many runs the minute rollup checks its whole horizon (`--graph-rollup-backfill`)
/// for minutes without a marker or with late spans, not only `--graph-rollup-lookback`: a
/// minute (schema v12) too old for the call copy is left out of graphs until then (about a
/// minute at the default 15 s interval, as the hourly backfill's passes).
const FULL_CHECK_EVERY: u64 = 4;
/// Slack between the call copy's TTL and the oldest minute read from it: the TTL runs on the
/// server's clock, the rollup on this process's.
const COPY_MARGIN_NS: i64 = 10 * MINUTE_NS;

/// The oldest minute start (ns) at `now_ns` that is read from the call copy: its calls, and
/// their parents `--graph-parent-lookback` before, are younger than the copy's TTL
/// (`orrery_store::schema::CALLS_HOURS`, schema v12) with a margin. Minutes before it are
/// (re)computed from `otel_traces` (`CallSource::Spans`), and graphs never read them from
/// the copy (left out and reported until rolled up).
pub fn copy_from(settings: &GraphArgs, now_ns: i64) -> i64 {
    let kept = orrery_store::schema::CALLS_HOURS as i64 * HOUR_NS;
    let lookback = settings
        .graph_parent_lookback
        .as_nanos()
        .min(HOUR_NS as u128) as i64;
    floor_minute(now_ns - kept + lookback + COPY_MARGIN_NS) + MINUTE_NS
}

/// The first hour whose minute rollups are all kept: a retention rule of the schema, defined
/// there so the graph's marker read takes it without importing the rollup job.
pub use orrery_store::schema::minutes_from;

/// The call source of each minute (ns) of `todo` (newest first) and the batches it is
/// computed in: minutes from `copy` on from the copy, older ones from the spans, in batches of
/// at most [`MINUTES_PER_BATCH`] minutes and, over spans, at most [`SPANS_BATCH_NS`] wide.
fn batches<T: Copy>(todo: &[(i64, T)], copy: i64) -> Vec<(CallSource, Vec<(i64, T)>)> {
    let mut out: Vec<(CallSource, Vec<(i64, T)>)> = Vec::new();
    for &(minute, v) in todo {
        let source = if minute >= copy {
            CallSource::Copy
        } else {
            CallSource::Spans
        };
        let fits = out.last().is_some_and(|(s, b)| {
            *s == source
                && b.len() < MINUTES_PER_BATCH
                && (source == CallSource::Copy || b[0].0 - minute < SPANS_BATCH_NS)
        });
        match out.last_mut() {
            Some((_, b)) if fits => b.push((minute, v)),
            _ => out.push((source, vec![(minute, v)])),
        }
    }
    out
}

pub struct Rollup {
    client: Client,
    settings: GraphArgs,
    /// Shared with the backfill's instance (`run`), so no two computations of this process
    /// ever share a `ComputedAt`; its writer id keeps other replicas' apart too.
    computed_at: std::sync::Arc<ComputedAtClock>,
}

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub computed: Vec<i64>,
    pub late_spans: u64,
}

pub fn floor_minute(ns: i64) -> i64 {
    ns.div_euclid(MINUTE_NS) * MINUTE_NS
}

impl Rollup {
    pub fn new(client: Client, settings: GraphArgs) -> Self {
        Self {
            client,
            settings,
            computed_at: Default::default(),
        }
    }

    /// Runs until `shutdown`, logging (not failing on) errors: ClickHouse may be briefly away.
    /// Minutes every `--graph-rollup-interval`; the 10-second slots as soon as one can close
    /// (at most 5 s apart) between; and,
    /// beside them, the hourly backfill of everything older than `--graph-rollup-backfill`
    /// (`backfill.rs`), its steps bounded by `--graph-backfill-step-timeout`.
    pub async fn run(self, shutdown: CancellationToken) {
        let step = self.settings.graph_backfill_step_timeout;
        let backfill = Rollup {
            client: self
                .client
                .clone()
                .with_setting("max_execution_time", format!("{:.3}", step.as_secs_f64())),
            settings: self.settings.clone(),
            computed_at: self.computed_at.clone(),
        };
        tokio::join!(
            self.run_minutes(shutdown.clone()),
            backfill.run_backfill(shutdown)
        );
    }

    /// The minute and slot rollups' loop.
    async fn run_minutes(&self, shutdown: CancellationToken) {
        let mut runs: u64 = 0;
        // A backfill is done in runs of at most MAX_MINUTES_PER_RUN minutes, back to back.
        let mut backfilling = false;
        let mut next_minutes = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_minutes {
                let lookback = if backfilling || runs.is_multiple_of(FULL_CHECK_EVERY) {
                    // From the start of the hour: the hourly backfill (`backfill.rs`) takes
                    // the whole hours before it, so the two meet without a gap or overlap.
                    let now = crate::now_ns();
                    let start = self.backfill_horizon(now);
                    Duration::from_nanos((now - start).max(0) as u64)
                } else {
                    self.settings.graph_rollup_lookback
                };
                backfilling = false;
                match self.run_once(crate::now_ns(), lookback).await {
                    Ok(r) if !r.computed.is_empty() => {
                        use std::sync::atomic::Ordering::Relaxed;
                        metrics::ROLLUP_MINUTES.fetch_add(r.computed.len() as u64, Relaxed);
                        metrics::ROLLUP_LATE_SPANS.fetch_add(r.late_spans, Relaxed);
                        backfilling = r.computed.len() >= MAX_MINUTES_PER_RUN;
                        tracing::debug!(
                            minutes = r.computed.len(),
                            late = r.late_spans,
                            "rolled up"
                        )
                    }
                    Ok(_) => {}
                    Err(err) => {
                        metrics::inc(&metrics::ROLLUP_FAILURES);
                        tracing::warn!(error = %format!("{err:#}"), "service-graph rollup failed")
                    }
                }
                runs += 1;
                next_minutes = tokio::time::Instant::now() + self.settings.graph_rollup_interval;
            }
            // The next pass when a slot can close (its end + grace, its spans settled), so the
            // live tail a graph joins is as short as the slot rule allows; at most SLOT_TICK.
            let mut wait = SLOT_TICK;
            match self.slot_pass(crate::now_ns()).await {
                Ok(pass) => {
                    let n = pass.computed.len() as u64;
                    metrics::ROLLUP_SLOTS.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    let until = (pass.next_ns - crate::now_ns()).max(0) as u64;
                    wait = Duration::from_nanos(until).clamp(SLOT_TICK_MIN, SLOT_TICK);
                }
                Err(err) => {
                    metrics::inc(&metrics::ROLLUP_FAILURES);
                    tracing::warn!(error = %format!("{err:#}"), "service-graph slot rollup failed")
                }
            }
            let tick = tokio::time::Instant::now() + wait;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(tick.min(next_minutes)) => {}
            }
        }
    }

    /// One pass at time `now_ns` over closed minutes within `lookback`.
    pub async fn run_once(&self, now_ns: i64, lookback: Duration) -> Result<RunReport> {
        let started_ns = crate::now_ns();
        let hi = floor_minute(now_ns - self.settings.graph_rollup_delay.as_nanos() as i64);
        let lo = floor_minute(now_ns - lookback.as_nanos() as i64);
        if hi <= lo {
            return Ok(RunReport::default());
        }
        // The markers once per run, from the first hour's start: the minutes decide what is
        // recomputed, then (updated with what this run computed) which hours are re-merged.
        let first_hour = lo.div_euclid(HOUR_NS) * HOUR_NS;
        let mut rolled = Rolled::read(&self.client, first_hour, hi).await?;

        // minute -> (spans now, late spans so far)
        let mut dirty: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        let mut late_total = 0;
        let mut follow: BTreeSet<i64> = BTreeSet::new();
        // Every closed minute gets a marker, empty ones too (with 0 spans), so readers know
        // the whole range up to the frontier is rolled up and skip reading spans for it.
        for minute in (lo..hi).step_by(MINUTE_NS as usize) {
            let spans = rolled.spans.get(&minute).copied().unwrap_or(0);
            match rolled.minutes.get(&minute) {
                None => {
                    dirty.insert(minute, (spans, 0));
                    // A new minute's spans may be the late parents of the next ones'.
                    follow.extend([minute + MINUTE_NS, minute + 2 * MINUTE_NS]);
                }
                Some(m) if rolled.is_stale(minute) => {
                    let late = rolled.pending_late(minute);
                    late_total += late;
                    dirty.insert(minute, (spans, m.late + late));
                }
                Some(_) => {}
            }
        }
        // The marked neighbours of stale minutes (the same rule readers use to read them
        // live), and of new minutes the two after (rolled up earlier when out of order).
        follow.extend(rolled.outdated(lo, hi));
        for minute in follow {
            if minute >= lo
                && minute < hi
                && !dirty.contains_key(&minute)
                && let Some(mark) = rolled.minutes.get(&minute)
            {
                let spans = rolled.spans.get(&minute).copied().unwrap_or(0);
                dirty.insert(minute, (spans, mark.late));
            }
        }
        let mut report = RunReport {
            late_spans: late_total,
            ..Default::default()
        };
        // Newest first (the minutes the live view most likely shows), in batches: one
        // computation per batch, since each query pays a scan of the time range. Minutes
        // older than the call copy keeps (schema v12) from `otel_traces`.
        let todo: Vec<(i64, (u64, u64))> = dirty
            .iter()
            .rev()
            .take(MAX_MINUTES_PER_RUN)
            .map(|(m, v)| (*m, *v))
            .collect();
        for (source, batch) in batches(&todo, copy_from(&self.settings, now_ns)) {
            for marker in self
                .compute_minutes(&batch, now_ns, source, started_ns)
                .await?
            {
                rolled
                    .minutes
                    .insert(marker.minute as i64 * 1_000_000_000, marker);
            }
            report.computed.extend(batch.iter().map(|(m, _)| *m));
        }
        // Every closed hour whose hour rows are missing or stale (a minute of it computed
        // since), merged from its minutes' latest rows.
        for hour in rolled.stale_hours(lo, hi).into_iter().rev() {
            self.compute_hours(&[hour]).await?;
        }
        Ok(report)
    }

    /// The `ComputedAt` of a computation by a pass that started at `started_ns` (this
    /// process's clock when the pass began), unique across replicas
    /// (orrery_store::computed_at). Replicas woken for one slot start their passes in the same
    /// millisecond more often than not; only the writer id keeps their computations apart.
    fn next_computed_at(&self, started_ns: i64) -> u64 {
        self.computed_at
            .next((started_ns.max(0) / 1_000_000) as u64)
    }

    /// Recomputes minutes `(minute, (spans, late))` from the call rows of `source`: edges,
    /// nodes, then markers (returned as written). The minute rollup reads the call copy back to
    /// [`copy_from`]; older minutes, and the backfill's, `otel_traces` (`CallSource::Spans`).
    async fn compute_minutes(
        &self,
        batch: &[(i64, (u64, u64))],
        now_ns: i64,
        source: CallSource,
        started_ns: i64,
    ) -> Result<Vec<MinuteMarker>> {
        let computed = self.next_computed_at(started_ns);
        // Empty minutes only get their marker: a first backfill marks a day of them.
        let busy: Vec<i64> = batch
            .iter()
            .filter(|(_, (spans, _))| *spans > 0)
            .map(|(m, _)| *m)
            .collect();
        let quality = if busy.is_empty() {
            Vec::new()
        } else {
            self.compute_rows(&busy, computed, now_ns, source).await?
        };
        let quality: BTreeMap<u32, &MinuteQuality> =
            quality.iter().map(|q| (q.minute, q)).collect();
        let markers: Vec<MinuteMarker> = batch
            .iter()
            .map(|(minute, (spans, late))| {
                let m = (minute / 1_000_000_000) as u32;
                let q = quality.get(&m);
                MinuteMarker {
                    minute: m,
                    computed_at: computed,
                    spans: *spans,
                    orphans: q.map(|q| q.orphans).unwrap_or(0),
                    unmatched: q.map(|q| q.unmatched).unwrap_or(0),
                    late: *late,
                }
            })
            .collect();
        let mut insert = self
            .client
            .insert::<MinuteMarker>("orrery_graph_minutes")
            .await
            .context("writing rollup markers")?;
        for marker in &markers {
            insert.write(marker).await?;
        }
        insert.end().await.context("writing rollup markers")?;
        Ok(markers)
    }

    /// Edge and node rows of the minutes `busy` (ns) with `computed`; their quality counts.
    async fn compute_rows(
        &self,
        busy: &[i64],
        computed: u64,
        now_ns: i64,
        source: CallSource,
    ) -> Result<Vec<MinuteQuality>> {
        let settled = now_ns - self.settings.graph_grace.as_nanos() as i64;
        let lo = busy.iter().copied().min().unwrap_or(0);
        let hi = busy.iter().copied().max().unwrap_or(0) + MINUTE_NS;
        let minutes: Vec<u32> = busy.iter().map(|m| (m / 1_000_000_000) as u32).collect();
        self.write_rows(&rows::MINUTES, source, (lo, hi), settled, computed, |q| {
            q.param("minutes", &minutes)
        })
        .await?;
        let quality: Vec<MinuteQuality> = self
            .client
            .query(&format!(
                "SELECT toUInt32(Minute) AS minute,
                    sumIf(Requests, {orphan}) AS orphans,
                    sumIf(Requests, {virt}) AS unmatched
                 FROM orrery_graph_edges_1m
                 WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({{lo:Int64}}))
                   AND Minute < toDateTime(fromUnixTimestamp64Nano({{hi:Int64}}))
                   AND ComputedAt = {{computed:UInt64}}
                 GROUP BY Minute",
                orphan = rules::IS_ORPHAN_ROW,
                virt = rules::IS_VIRTUAL_ROW,
            ))
            .param("lo", lo)
            .param("hi", hi)
            .param("computed", computed)
            .fetch_all()
            .await
            .context("reading rollup quality counts")?;
        Ok(quality)
    }
}

#[derive(Row, Deserialize, Debug)]
struct MinuteQuality {
    minute: u32,
    orphans: u64,
    unmatched: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MINUTE_NS;

    #[test]
    fn minutes_older_than_the_copy_are_batched_over_spans_an_hour_at_most() {
        let s = GraphArgs::default();
        let now = 1_000 * HOUR_NS;
        let copy = copy_from(&s, now);
        // Six hours kept; the parents' 10 minutes and a 10-minute margin inside them.
        assert_eq!(copy, now - 6 * HOUR_NS + 21 * M);
        // Newest first: three recent minutes, then old ones scattered over three hours.
        let todo: Vec<(i64, ())> = [now - M, now - 2 * M, copy, copy - M, copy - 30 * M]
            .into_iter()
            .chain([copy - 70 * M, copy - 71 * M, copy - 200 * M])
            .map(|m| (m, ()))
            .collect();
        let got: Vec<(CallSource, Vec<i64>)> = batches(&todo, copy)
            .into_iter()
            .map(|(s, b)| (s, b.into_iter().map(|(m, _)| m).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                (CallSource::Copy, vec![now - M, now - 2 * M, copy]),
                (CallSource::Spans, vec![copy - M, copy - 30 * M]),
                (CallSource::Spans, vec![copy - 70 * M, copy - 71 * M]),
                (CallSource::Spans, vec![copy - 200 * M]),
            ]
        );
        // A day of minutes over the copy: batches of 60.
        let day: Vec<(i64, ())> = (0..1440).map(|i| (now - i * M, ())).collect();
        let b = batches(&day, i64::MIN);
        assert_eq!(b.len(), 24);
        assert!(
            b.iter()
                .all(|(s, b)| *s == CallSource::Copy && b.len() == 60)
        );
    }
}
