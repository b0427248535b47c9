//! The hourly backfill: rollups over the whole retention, not only the minute rollup's
//! `--graph-rollup-backfill` horizon (48 h), so a window of any length is read from hourly rows
//! instead of joining days of spans.
//!
//! A fresh install over a spans table that already holds weeks (or an install whose rollups
//! stopped at the horizon while it was down) has old hours with spans and no rollup. In the
//! background, every replica works through them **newest first** (the hours a long window most
//! likely shows), a few hours per step: each hour's 60 minutes are computed in one batch, like
//! the minute rollup's and by the same code (`Rollup::compute_minutes`, `rows.rs`) — over
//! `otel_traces` itself (`graph_rules::CallSource::Spans`: the call view's own expressions),
//! since the call copy keeps only ~2 days (schema v11) — into minute rows and markers, then the
//! hours are merged from those minute rows by the minute rollup's own hour merge (`hours.rs`,
//! the same marker/version scheme). So readers,
//! the minute rollup and replicas judge a backfilled hour exactly like any other: current while
//! its minutes' span counts still match their markers. A late span into it makes its minutes
//! left out of graphs (reported in data quality: the call copy to read them from is gone) until
//! the next pass, within a minute, recomputes the hour.
//!
//! State lives in ClickHouse only (the markers): a restart or a second replica re-reads what is
//! left. Each step re-reads its hours' markers first and skips what another replica finished;
//! two replicas computing one hour at once write two computations of which readers use the
//! latest (never both). A step is bounded by `--graph-backfill-step-timeout` (the engine's
//! `max_execution_time`) and by [`STEP_SPANS`]; a failed step ends its pass, so the next pass
//! retries it before any older hour (newest first holds: no older hour is rolled up past a
//! hole), and only a step that failed [`MAX_STEP_FAILURES`] passes in a row is left behind for
//! the older ones to go on (its hours stay reported as uncovered).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clickhouse::Row;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::Rollup;
use crate::graph::fetch::Rolled;
use crate::graph::fetch::markers::{HOUR_NS, MINUTE_NS};
use crate::metrics;
use orrery_store::graph_rules::CallSource;

/// Hours computed by one step at most (their minute versions are bound as one parameter).
const MAX_HOURS_PER_STEP: usize = 6;
/// Spans one step computes at most (counted on insert); an hour alone may hold more, then its
/// minutes are computed in chunks of about this many spans.
pub const STEP_SPANS: u64 = 5_000_000;
/// Pause between passes once nothing is pending: late spans into old hours make their minutes
/// left out of graphs (and reported) until the next pass recomputes the hour.
const IDLE: Duration = Duration::from_secs(60);
/// Pause after a failed step or plan (ClickHouse may be briefly away).
const RETRY: Duration = Duration::from_secs(30);
/// Passes in a row a step may fail before the backfill goes past it to older hours: one bad
/// hour must not stop the whole retention's backfill, nor a passing hiccup reorder it.
const MAX_STEP_FAILURES: u32 = 3;

/// What the backfill has left: hours (ns) older than the minute rollup's horizon that need a
/// computation, newest first, and how many hours the range holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub pending: Vec<(i64, u64)>,
    pub total: usize,
}

#[derive(Row, Deserialize)]
struct SpanRange {
    minutes: u64,
    first: u32,
}

impl Rollup {
    /// The first minute (Unix seconds) with stored spans before `hi` (ns), from
    /// `orrery_span_minutes`, so the retention's TTL is the only bound; `None` when there is
    /// none. What the hourly backfill and the day rollup each start from.
    pub(super) async fn first_stored_minute(&self, hi: i64) -> Result<Option<u32>> {
        let range: SpanRange = self
            .client
            .query(
                "SELECT count() AS minutes, toUInt32(min(Minute)) AS first
FROM orrery_span_minutes WHERE Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))",
            )
            .param("hi", hi)
            .fetch_one()
            .await
            .context("reading the first stored minute")?;
        Ok((range.minutes > 0).then_some(range.first))
    }
}

fn floor_hour(ns: i64) -> i64 {
    ns.div_euclid(HOUR_NS) * HOUR_NS
}

pub(super) fn utc(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:00Z", rem / 3600)
}

/// Whether hour `h` needs a computation: a minute without a marker, a minute not current (its
/// count changed, or a neighbour's did), or hour rows missing or made from older minutes. An
/// hour before `cut` ([`super::minutes_from`]: its minutes may be gone, schema v14) is judged
/// by its hour marker alone: it needs one unless the marker's span count and its neighbours'
/// still equal the hours' counts (a late span changes its neighbour minutes' calls, across an
/// hour boundary too, so a late span recomputes the hours either side with it).
fn needs(rolled: &Rolled, outdated: &std::collections::BTreeSet<i64>, h: i64, cut: i64) -> bool {
    if h + HOUR_NS <= cut {
        return ![h - HOUR_NS, h, h + HOUR_NS]
            .iter()
            .all(|&x| x >= cut || rolled.hour_quiet(x));
    }
    let (version, marked) = rolled.minutes_version(h);
    marked < 60
        || outdated.range(h..h + HOUR_NS).next().is_some()
        || rolled.hours.get(&h) != Some(&version)
}

impl Rollup {
    /// The end of the backfill's range at `now_ns`: the whole hours before the minute
    /// rollup's horizon (`--graph-rollup-backfill`), whose long runs start at this hour.
    /// Never before [`super::minutes_from`]: older minutes are not kept (schema v14), so the
    /// minute rollup would find them unmarked and recompute them every run.
    pub fn backfill_horizon(&self, now_ns: i64) -> i64 {
        floor_hour(now_ns - self.settings.graph_rollup_backfill.as_nanos() as i64)
            .max(super::minutes_from(now_ns))
    }

    /// The hours from the first stored span (`orrery_span_minutes`, so the retention's TTL is
    /// the only bound) to the horizon that need a computation, newest first.
    pub async fn backfill_plan(&self, now_ns: i64) -> Result<Plan> {
        let hi = self.backfill_horizon(now_ns);
        let Some(first) = self.first_stored_minute(hi).await? else {
            return Ok(Plan::default());
        };
        let lo = floor_hour(first as i64 * 1_000_000_000);
        if lo >= hi {
            return Ok(Plan::default());
        }
        let rolled = Rolled::read(&self.client, lo, hi).await?;
        let outdated = rolled.outdated(lo, hi);
        let mut plan = Plan {
            total: ((hi - lo) / HOUR_NS) as usize,
            ..Plan::default()
        };
        let hours: Vec<i64> = (lo..hi).step_by(HOUR_NS as usize).collect();
        for &h in hours.iter().rev() {
            if needs(&rolled, &outdated, h, super::minutes_from(now_ns)) {
                let spans = rolled.spans.range(h..h + HOUR_NS).map(|(_, n)| n).sum();
                plan.pending.push((h, spans));
            }
        }
        Ok(plan)
    }

    /// Computes the hours `group` (ns, consecutive, newest first) that still need it once
    /// their markers are re-read; returns those computed and the late spans found.
    pub async fn backfill_step(&self, group: &[i64], now_ns: i64) -> Result<(Vec<i64>, u64)> {
        let (Some(&newest), Some(&oldest)) = (group.first(), group.last()) else {
            return Ok((Vec::new(), 0));
        };
        // A minute beyond each end too: a neighbour's late span makes a minute outdated.
        // The hours either side whole: an old hour is judged with its neighbours' counts.
        let rolled = Rolled::read(&self.client, oldest - HOUR_NS, newest + 2 * HOUR_NS).await?;
        let outdated = rolled.outdated(oldest - MINUTE_NS, newest + HOUR_NS + MINUTE_NS);
        let hours: Vec<i64> = group
            .iter()
            .copied()
            .filter(|&h| needs(&rolled, &outdated, h, super::minutes_from(now_ns)))
            .collect();
        // Every minute of those hours, oldest first: (minute, (spans now, late spans so far)).
        let mut late_total = 0;
        let mut minutes: Vec<(i64, (u64, u64))> = Vec::new();
        for &h in hours.iter().rev() {
            for m in (h..h + HOUR_NS).step_by(MINUTE_NS as usize) {
                let spans = rolled.spans.get(&m).copied().unwrap_or(0);
                let late = match rolled.minutes.get(&m) {
                    None => 0,
                    Some(mark) => {
                        let pending = rolled.pending_late(m);
                        late_total += pending;
                        mark.late + pending
                    }
                };
                minutes.push((m, (spans, late)));
            }
        }
        // Chunks of about STEP_SPANS spans: one join each.
        let mut chunk: Vec<(i64, (u64, u64))> = Vec::new();
        let mut chunk_spans = 0;
        for m in minutes {
            if !chunk.is_empty() && chunk_spans + m.1.0 > STEP_SPANS {
                self.compute_minutes(&chunk, now_ns, CallSource::Spans, crate::now_ns())
                    .await?;
                chunk.clear();
                chunk_spans = 0;
            }
            chunk_spans += m.1.0;
            chunk.push(m);
        }
        if !chunk.is_empty() {
            self.compute_minutes(&chunk, now_ns, CallSource::Spans, crate::now_ns())
                .await?;
        }
        if !hours.is_empty() {
            self.compute_hours(&hours).await?;
        }
        Ok((hours, late_total))
    }

    /// Works through the plan until `shutdown`, newest hours first, one bounded step at a
    /// time; logs each step (hours done / total, ETA) and keeps the backfill gauges current.
    pub async fn run_backfill(&self, shutdown: CancellationToken) {
        use std::sync::atomic::Ordering::Relaxed;
        let step_timeout = self.settings.graph_backfill_step_timeout;
        let pause = |d: Duration| {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => true,
                    _ = tokio::time::sleep(d) => false,
                }
            }
        };
        let mut announced_done = false;
        let mut days_settled = false;
        // Consecutive failed passes per step (keyed by the step's newest hour).
        let mut failures: std::collections::HashMap<i64, u32> = Default::default();
        loop {
            // The day rollup once per pass: days whose hours this task (or the minute loop)
            // made current since.
            self.days_pass(&mut days_settled).await;
            let plan = match self.backfill_plan(crate::now_ns()).await {
                Ok(p) => p,
                Err(err) => {
                    metrics::inc(&metrics::ROLLUP_FAILURES);
                    tracing::warn!(error = %format!("{err:#}"), "rollup backfill: reading what is left failed");
                    if pause(RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let total = plan.total;
            let mut pending = plan.pending.len();
            metrics::BACKFILL_HOURS_PENDING.store(pending as u64, Relaxed);
            metrics::BACKFILL_HOURS_DONE.store((total - pending) as u64, Relaxed);
            if pending == 0 {
                if !announced_done && total > 0 {
                    tracing::info!(
                        hours = total,
                        "rollup backfill: every hour of the retention is rolled up"
                    );
                }
                announced_done = true;
                if pause(IDLE).await {
                    return;
                }
                continue;
            }
            announced_done = false;
            tracing::info!(
                pending,
                total,
                newest = %utc(plan.pending[0].0),
                oldest = %utc(plan.pending[pending - 1].0),
                "rollup backfill: hours to roll up, newest first"
            );
            let started = Instant::now();
            let mut computed_this_pass = 0usize;
            let mut i = 0;
            while i < plan.pending.len() {
                // The next consecutive hours, within the step's bounds.
                let mut group = vec![plan.pending[i].0];
                let mut spans = plan.pending[i].1;
                while let Some(&(h, n)) = plan.pending.get(i + group.len()) {
                    if group.len() >= MAX_HOURS_PER_STEP
                        || h + HOUR_NS != *group.last().unwrap_or(&h)
                        || spans + n > STEP_SPANS
                    {
                        break;
                    }
                    group.push(h);
                    spans += n;
                }
                i += group.len();
                let step = Instant::now();
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = tokio::time::timeout(step_timeout, self.backfill_step(&group, crate::now_ns())) => r,
                };
                let failed = match result {
                    Ok(Ok((hours, late))) => {
                        failures.remove(&group[0]);
                        metrics::ROLLUP_BACKFILL_HOURS.fetch_add(hours.len() as u64, Relaxed);
                        metrics::ROLLUP_LATE_SPANS.fetch_add(late, Relaxed);
                        computed_this_pass += group.len();
                        pending = pending.saturating_sub(group.len());
                        metrics::BACKFILL_HOURS_PENDING.store(pending as u64, Relaxed);
                        metrics::BACKFILL_HOURS_DONE.store((total - pending) as u64, Relaxed);
                        let per_hour = started.elapsed().as_secs_f64() / computed_this_pass as f64;
                        tracing::info!(
                            from = %utc(*group.last().unwrap_or(&0)),
                            to = %utc(group[0] + HOUR_NS),
                            computed = hours.len(),
                            spans,
                            step_ms = step.elapsed().as_millis() as u64,
                            done = total - pending,
                            total,
                            eta_s = (per_hour * pending as f64).round() as u64,
                            "rollup backfill: step done"
                        );
                        false
                    }
                    Ok(Err(err)) => {
                        metrics::inc(&metrics::ROLLUP_FAILURES);
                        tracing::warn!(from = %utc(*group.last().unwrap_or(&0)), hours = group.len(),
                            error = %format!("{err:#}"), "rollup backfill: step failed");
                        true
                    }
                    Err(_) => {
                        metrics::inc(&metrics::ROLLUP_FAILURES);
                        tracing::warn!(from = %utc(*group.last().unwrap_or(&0)), hours = group.len(),
                            timeout_s = step_timeout.as_secs(),
                            "rollup backfill: step over --graph-backfill-step-timeout");
                        true
                    }
                };
                if failed {
                    let n = failures.entry(group[0]).or_default();
                    *n += 1;
                    if *n < MAX_STEP_FAILURES {
                        // Retried first by the next pass: going on to older hours now would
                        // roll them up past this hole.
                        tracing::warn!(
                            newest = %utc(group[0]),
                            attempt = *n,
                            "rollup backfill: pass ended at a failed step; it is retried before any older hour"
                        );
                        if pause(RETRY).await {
                            return;
                        }
                        break;
                    }
                    tracing::warn!(
                        newest = %utc(group[0]),
                        attempts = *n,
                        "rollup backfill: step failed every time; older hours go on, these stay uncovered until it succeeds"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_named_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00Z");
        assert_eq!(utc(1_796_000_400 * 1_000_000_000), "2026-11-30T01:00Z");
        assert_eq!(utc(951_782_400 * 1_000_000_000), "2000-02-29T00:00Z");
    }
}
