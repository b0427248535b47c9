//! Day rollups (schema v13): one row per edge and node per whole UTC day, merged from the hour
//! rows of a day whose 24 hours are rolled up and current, so a month-long window reads ~30
//! rows per edge, not ~720 (the hourly rows with their 64 histogram columns were most of a
//! 30-day graph's cold read).
//!
//! The rule is the hour markers' one level up: a day's marker (`orrery_graph_days`) records
//! `HoursVersion`, the sum of the `MinutesVersion` of the hour markers its rows were merged
//! from. A reader takes the day whole only while each of its 24 hours is read from hourly rows
//! (current: made from the current computation of each minute) and their versions still add
//! up to the marker's (`Rolled::whole_days`); a late span into an old day makes its hour stale,
//! so that day is read from its hours and minutes (and the stale minutes from spans, or left
//! out and reported) until the rollup recomputes the minutes, re-merges the hour, and this job
//! merges the day again. State is only the markers in ClickHouse; every replica may run it
//! (two merges of one day write two computations, readers use the latest).
//!
//! It runs beside the hourly backfill (`backfill.rs`), once per pass (about every minute once
//! the backfill is idle): it reads the markers of every closed day of the retention summed per
//! hour (`Rolled::read_window`: ~one row per hour) and merges the days that need it, newest
//! first.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::Rollup;
use crate::graph::fetch::Rolled;
use crate::graph::fetch::markers::HOUR_NS;
use crate::metrics;

/// A UTC day (ns).
pub const DAY_NS: i64 = 24 * HOUR_NS;
/// Days merged by one pass at most (each is three small `INSERT … SELECT`s over its hour
/// rows); a fresh install's month is done in one pass, a longer retention in a few.
const MAX_DAYS_PER_PASS: usize = 64;

/// The day (Unix seconds) an `Hour` column's value is in: arithmetic on the Unix time, whole
/// UTC days whatever the server's time zone (as hours, see `hours.rs`).
const DAY_OF_HOUR: &str = super::merge::DAYS.unit_of;

/// What the day rollup has left, from the markers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayPlan {
    /// Closed days (ns, newest first) whose 24 hours are current and whose day rows are
    /// missing or were merged from other hour rows: the days to merge.
    pub pending: Vec<i64>,
    /// Each pending day's span count (its day and the hour either side, `Rolled::day_count`)
    /// as this plan verified its hours quiet at: what its new marker records.
    pub counts: BTreeMap<i64, u64>,
    /// Closed days whose day rows are current (read whole).
    pub done: usize,
    /// Closed days with an hour not rolled up or not current (the backfill has not reached
    /// it, late spans, the first day's hours before the first span): read from their hours
    /// and minutes, merged once their hours are.
    pub waiting: usize,
    /// The newest closed day (ns) whose day rows are current.
    pub newest_done: Option<i64>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayReport {
    pub plan: DayPlan,
    /// Days (ns) merged, newest first.
    pub merged: Vec<i64>,
}

#[derive(Row, Deserialize)]
struct HourVersion {
    hour: u32,
    computed_at: u64,
    version: u64,
}

#[derive(Row, Serialize)]
struct DayMarker {
    #[serde(rename = "Day")]
    day: u32,
    #[serde(rename = "ComputedAt")]
    computed_at: u64,
    #[serde(rename = "HoursVersion")]
    hours_version: u64,
    /// The span count of the day and the hour either side its hours were verified at
    /// (schema v15); −1 when unknown.
    #[serde(rename = "Spans")]
    spans: i64,
}

pub fn floor_day(ns: i64) -> i64 {
    ns.div_euclid(DAY_NS) * DAY_NS
}

/// The day plan of `[lo, hi)` (whole days) from a graph read's markers: a day is mergeable
/// when all 24 hours are summed up whole (`Rolled::summarized`: every minute marked and
/// current, the hours either side quiet, the hour marker made from those minutes), and done
/// when its marker's version is the sum of theirs and its marker's span count (schema v15) is
/// its count now — or when a graph read takes it whole by that count alone
/// (`Rolled::days_by_count`). A day merged before v15 (no count) is merged once more, so
/// graphs decide it by its marker and its count instead of its 24 hours.
pub fn plan_days(rolled: &Rolled, lo: i64, hi: i64) -> DayPlan {
    let mut plan = DayPlan::default();
    let mut d = floor_day(hi - 1);
    while d >= lo {
        // Wrapping, as every sum of versions (they are compared for equality only).
        let version: Option<u64> = (0..24).try_fold(0u64, |sum, k| {
            let s = rolled.summarized.get(&(d + k * HOUR_NS))?;
            Some(sum.wrapping_add(s.version))
        });
        let by_count = rolled.days_by_count.contains(&d);
        match version {
            _ if by_count => {
                plan.done += 1;
                plan.newest_done.get_or_insert(d);
            }
            None => plan.waiting += 1,
            Some(v) if rolled.days.get(&d) == Some(&v) && rolled.day_quiet(d) => {
                plan.done += 1;
                plan.newest_done.get_or_insert(d);
            }
            Some(_) => {
                plan.pending.push(d);
                plan.counts.insert(d, rolled.day_count(d));
            }
        }
        d -= DAY_NS;
    }
    plan
}

impl Rollup {
    /// The closed days from the first stored span's (`orrery_span_minutes`: the retention is
    /// the bound) to the one before `now_ns`'s, and what each needs.
    pub async fn days_plan(&self, now_ns: i64) -> Result<(DayPlan, i64, i64)> {
        let hi = floor_day(now_ns);
        let Some(first) = self.first_stored_minute(hi).await? else {
            return Ok((DayPlan::default(), hi, hi));
        };
        let lo = floor_day(first as i64 * 1_000_000_000);
        if lo >= hi {
            return Ok((DayPlan::default(), lo, hi));
        }
        let rolled = Rolled::read_window(&self.client, lo, hi).await?;
        Ok((plan_days(&rolled, lo, hi), lo, hi))
    }

    /// One pass: plans, then merges the pending days (newest first, at most
    /// [`MAX_DAYS_PER_PASS`]).
    pub async fn roll_days(&self, now_ns: i64) -> Result<DayReport> {
        let (plan, _, _) = self.days_plan(now_ns).await?;
        let days: Vec<i64> = plan
            .pending
            .iter()
            .copied()
            .take(MAX_DAYS_PER_PASS)
            .collect();
        let mut merged = Vec::new();
        // A few days per statement set: each statement reads their hour rows once.
        for chunk in days.chunks(8) {
            merged.extend(self.compute_days(chunk, &plan.counts).await?);
        }
        Ok(DayReport { plan, merged })
    }

    /// Day rows of `days` (ns) from the latest rows of their hours, then their markers. Each
    /// day's version is the sum of the hour markers its rows are selected by (read once, bound
    /// to every statement), so an hour re-merged meanwhile only makes its day stale (merged
    /// again by the next pass). A day without all 24 hour markers is skipped. Each marker
    /// records the day's span count from `counts` (the plan's, at which its hours and the
    /// hour either side were verified quiet; −1 when absent): a count, unlike the versions
    /// read here, must never run ahead of what the rows were made from — a late span between
    /// the plan and this merge then leaves the day to its hours until the next pass. Returns
    /// the days merged.
    pub(super) async fn compute_days(
        &self,
        days: &[i64],
        counts: &BTreeMap<i64, u64>,
    ) -> Result<Vec<i64>> {
        let computed = self.next_computed_at(crate::now_ns());
        let secs: Vec<u32> = days.iter().map(|d| (d / 1_000_000_000) as u32).collect();
        let lo = secs.iter().copied().min().unwrap_or(0);
        let hi = secs.iter().copied().max().unwrap_or(0) + 86_400;
        let hours: Vec<HourVersion> = self
            .client
            .query(&format!(
                "SELECT toUInt32(Hour) AS hour, max(ComputedAt) AS computed_at,
    argMax(MinutesVersion, ComputedAt) AS version
FROM orrery_graph_hours
WHERE Hour >= toDateTime({{lo:UInt32}}) AND Hour < toDateTime({{hi:UInt32}})
    AND has({{days:Array(UInt32)}}, {DAY_OF_HOUR})
GROUP BY Hour"
            ))
            .param("lo", lo)
            .param("hi", hi)
            .param("days", &secs)
            .fetch_all()
            .await
            .context("reading the days' hour markers")?;
        let mut versions: BTreeMap<u32, (u64, usize)> = BTreeMap::new();
        for h in &hours {
            let v = versions.entry(h.hour - h.hour % 86_400).or_default();
            v.0 = v.0.wrapping_add(h.version);
            v.1 += 1;
        }
        versions.retain(|_, (_, n)| *n == 24);
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(u32, u64)> = hours
            .iter()
            .filter(|h| versions.contains_key(&(h.hour - h.hour % 86_400)))
            .map(|h| (h.hour, h.computed_at))
            .collect();
        self.merge_rows(&super::merge::DAYS, (lo, hi), &pairs, computed)
            .await?;
        let mut insert = self
            .client
            .insert::<DayMarker>("orrery_graph_days")
            .await
            .context("writing day markers")?;
        for (&day, &(version, _)) in versions.iter().rev() {
            insert
                .write(&DayMarker {
                    day,
                    computed_at: computed,
                    hours_version: version,
                    spans: counts
                        .get(&(day as i64 * 1_000_000_000))
                        .map_or(-1, |n| *n as i64),
                })
                .await?;
        }
        insert.end().await.context("writing day markers")?;
        Ok(versions
            .keys()
            .rev()
            .map(|d| *d as i64 * 1_000_000_000)
            .collect())
    }
}

impl Rollup {
    /// One pass of the day rollup with its gauges and log lines (the backfill task runs it
    /// once per pass): a line when days were merged, one when every closed day that can be is
    /// (`*settled` remembers it, so an idle service logs it once), a warning on failure.
    pub(super) async fn days_pass(&self, settled: &mut bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = crate::now_ns();
        match self.roll_days(now).await {
            Ok(r) => {
                let pending = r.plan.pending.len() - r.merged.len().min(r.plan.pending.len());
                let done = r.plan.done + r.merged.len();
                metrics::ROLLUP_DAYS.fetch_add(r.merged.len() as u64, Relaxed);
                metrics::DAYS_DONE.store(done as u64, Relaxed);
                metrics::DAYS_PENDING.store(pending as u64, Relaxed);
                let newest = r.merged.first().copied().max(r.plan.newest_done);
                let lag = newest.map_or(0, |d| ((now - d - DAY_NS) / 1_000_000_000).max(0));
                metrics::DAYS_LAG_S.store(lag as u64, Relaxed);
                if !r.merged.is_empty() {
                    tracing::info!(
                        merged = r.merged.len(),
                        newest = %super::backfill::utc(r.merged[0]),
                        oldest = %super::backfill::utc(*r.merged.last().unwrap_or(&0)),
                        done,
                        pending,
                        waiting = r.plan.waiting,
                        "rollup days: merged from hour rows"
                    );
                }
                let now_settled = pending == 0;
                if now_settled && !*settled && done > 0 {
                    tracing::info!(
                        done,
                        waiting = r.plan.waiting,
                        "rollup days: every closed day whose hours are rolled up is merged"
                    );
                }
                *settled = now_settled;
            }
            Err(err) => {
                metrics::inc(&metrics::ROLLUP_FAILURES);
                tracing::warn!(error = %format!("{err:#}"), "rollup days: pass failed; retried next pass");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::fetch::HourSum;

    #[test]
    fn a_day_is_merged_once_all_its_hours_are_whole_and_done_while_its_version_matches() {
        let d0 = 20_000 * DAY_NS;
        let mut r = Rolled::default();
        // Three days: the first whole and merged, the second whole but merged from an older
        // hour (its 5th hour re-merged since), the third missing an hour.
        for d in 0..3 {
            for k in 0..24 {
                if d == 2 && k == 7 {
                    continue;
                }
                let version = 1_000 + k as u64 + u64::from(d == 1 && k == 5);
                r.summarized.insert(
                    d0 + d * DAY_NS + k * HOUR_NS,
                    HourSum {
                        version,
                        spans: 1,
                        late: 0,
                    },
                );
            }
        }
        let sum: u64 = (0..24).map(|k| 1_000 + k).sum();
        r.days.insert(d0, sum);
        r.days.insert(d0 + DAY_NS, sum);
        // Two spans an hour, from the hour before the first day on.
        for k in -1..(3 * 24 + 1) {
            r.hour_counts.insert(d0 + k * HOUR_NS, 2);
        }
        // The first day's marker has no count (merged before schema v15): merged once more,
        // recording its count (its day and the hour either side).
        let plan = plan_days(&r, d0, d0 + 3 * DAY_NS);
        assert_eq!(plan.pending, vec![d0 + DAY_NS, d0]);
        assert_eq!(plan.counts[&d0], 2 * 26);
        assert_eq!((plan.done, plan.waiting), (0, 1));
        // With its count it is done; one span more next to it (the hour before) and it is
        // merged again.
        r.day_spans.insert(d0, 52);
        let plan = plan_days(&r, d0, d0 + 3 * DAY_NS);
        assert_eq!(plan.pending, vec![d0 + DAY_NS]);
        assert_eq!((plan.done, plan.waiting), (1, 1));
        assert_eq!(plan.newest_done, Some(d0));
        r.hour_counts.insert(d0 - HOUR_NS, 3);
        assert_eq!(
            plan_days(&r, d0, d0 + 3 * DAY_NS).pending,
            vec![d0 + DAY_NS, d0]
        );
        // A day a graph read takes whole by its count is done, whatever its hours.
        r.days_by_count.insert(d0 + 2 * DAY_NS);
        let plan = plan_days(&r, d0, d0 + 3 * DAY_NS);
        assert_eq!((plan.done, plan.waiting), (1, 0));
        assert_eq!(plan.newest_done, Some(d0 + 2 * DAY_NS));
        assert_eq!(floor_day(d0 + 5), d0);
        assert_eq!(floor_day(d0 - 5), d0 - DAY_NS);
    }
}
