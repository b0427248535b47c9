//! The hourly backfill: rollups over the whole retention, not only the minute rollup's
//! `--graph-rollup-backfill` horizon (48 h), so a window of any length is read from hourly rows
//! instead of joining days of spans.
//!
//! A fresh install over a spans table that already holds weeks (or an install whose rollups
//! stopped at the horizon while it was down) has old hours with spans and no rollup. In the
//! background, every replica works through them **newest first** (the hours a long window most
//! likely shows), a few hours per step: each hour's 60 minutes are computed in one batch, like
//! the minute rollup's, by the SQL of `orrery_store::graph_rules` — over `otel_traces` itself
//! (the call view's own select, [`over_spans`]), since the call copy keeps only ~2 days
//! (schema v11) — into minute
//! rows and markers, then the hours are merged from those
//! minute rows under the same marker/version scheme as [`Rollup::compute_hour`]. So readers,
//! the minute rollup and replicas judge a backfilled hour exactly like any other: current while
//! its minutes' span counts still match their markers. A late span into it makes its minutes
//! left out of graphs (reported in data quality: the call copy to read them from is gone) until
//! the next pass, within a minute, recomputes the hour.
//!
//! State lives in ClickHouse only (the markers): a restart or a second replica re-reads what is
//! left. Each step re-reads its hours' markers first and skips what another replica finished;
//! two replicas computing one hour at once write two computations of which readers use the
//! latest (never both). A step is bounded by `--graph-backfill-step-timeout` (the engine's
//! `max_execution_time`) and by [`STEP_SPANS`]; a failed step is logged and retried later.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{MinuteVersion, Rollup};
use crate::calls;
use crate::graph::fetch::markers::{HOUR_NS, MINUTE_NS};
use crate::graph::fetch::{MinuteMarker, Rolled};
use crate::metrics;

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

#[derive(Row, Serialize)]
struct HourMarker {
    #[serde(rename = "Hour")]
    hour: u32,
    #[serde(rename = "ComputedAt")]
    computed_at: u64,
    #[serde(rename = "MinutesVersion")]
    minutes_version: u64,
}

/// `otel_traces` as rows of `orrery_span_calls`: the call view's own `SELECT` (schema v4, from
/// `graph_rules::call_view_ddl`, so the same expressions and rules), as a subquery. Every use
/// filters on `Timestamp`, which ClickHouse pushes down into it (and prunes by day partition).
fn spans_as_calls() -> String {
    let keys = orrery_store::schema::CALL_RESOURCE_KEYS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let ddl =
        orrery_store::graph_rules::call_view_ddl("db", "mv", "", "calls", "otel_traces", &keys);
    let select = ddl.split_once("\nAS ").map_or("", |(_, s)| s);
    format!("({})", select.replace("db.otel_traces", "otel_traces"))
}

/// A rollup query of the call rules (`graph_rules`), reading `otel_traces` instead of the call
/// copy, which keeps only ~2 days (schema v11).
fn over_spans(sql: &str) -> String {
    sql.replace(
        "FROM orrery_span_calls",
        &format!("FROM {}", spans_as_calls()),
    )
}

fn floor_hour(ns: i64) -> i64 {
    ns.div_euclid(HOUR_NS) * HOUR_NS
}

fn utc(ns: i64) -> String {
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
/// count changed, or a neighbour's did), or hour rows missing or made from older minutes.
fn needs(rolled: &Rolled, outdated: &std::collections::BTreeSet<i64>, h: i64) -> bool {
    let (version, marked) = rolled.minutes_version(h);
    marked < 60
        || outdated.range(h..h + HOUR_NS).next().is_some()
        || rolled.hours.get(&h) != Some(&version)
}

impl Rollup {
    /// The end of the backfill's range at `now_ns`: the whole hours before the minute
    /// rollup's horizon (`--graph-rollup-backfill`), whose long runs start at this hour.
    pub fn backfill_horizon(&self, now_ns: i64) -> i64 {
        floor_hour(now_ns - self.settings.graph_rollup_backfill.as_nanos() as i64)
    }

    /// The hours from the first stored span (`orrery_span_minutes`, so the retention's TTL is
    /// the only bound) to the horizon that need a computation, newest first.
    pub async fn backfill_plan(&self, now_ns: i64) -> Result<Plan> {
        let hi = self.backfill_horizon(now_ns);
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
        if range.minutes == 0 {
            return Ok(Plan::default());
        }
        let lo = floor_hour(range.first as i64 * 1_000_000_000);
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
            if needs(&rolled, &outdated, h) {
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
        let rolled = Rolled::read(
            &self.client,
            oldest - MINUTE_NS,
            newest + HOUR_NS + MINUTE_NS,
        )
        .await?;
        let outdated = rolled.outdated(oldest - MINUTE_NS, newest + HOUR_NS + MINUTE_NS);
        let hours: Vec<i64> = group
            .iter()
            .copied()
            .filter(|&h| needs(&rolled, &outdated, h))
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
                self.compute_old_minutes(&chunk, now_ns).await?;
                chunk.clear();
                chunk_spans = 0;
            }
            chunk_spans += m.1.0;
            chunk.push(m);
        }
        if !chunk.is_empty() {
            self.compute_old_minutes(&chunk, now_ns).await?;
        }
        if !hours.is_empty() {
            self.compute_hours(&hours).await?;
        }
        Ok((hours, late_total))
    }

    /// [`Rollup::compute_minutes`] for minutes older than the call copy: their edge and node
    /// rows from `otel_traces` through the call view's own expressions ([`over_spans`]:
    /// `orrery_span_calls` keeps only ~2 days, schema v11), by the same rules, then markers.
    async fn compute_old_minutes(&self, batch: &[(i64, (u64, u64))], now_ns: i64) -> Result<()> {
        use orrery_store::graph_rules::{self as rules, minute_filter};
        let computed = self.next_computed_at();
        let busy: Vec<i64> = batch
            .iter()
            .filter(|(_, (spans, _))| *spans > 0)
            .map(|(m, _)| *m)
            .collect();
        let mut quality: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        if let (Some(&lo), Some(&last)) = (busy.iter().min(), busy.iter().max()) {
            let hi = last + MINUTE_NS;
            let lookback = self.settings.graph_parent_lookback.as_nanos() as i64;
            let settled = now_ns - self.settings.graph_grace.as_nanos() as i64;
            let minutes: Vec<u32> = busy.iter().map(|m| (m / 1_000_000_000) as u32).collect();
            let bind = |q: clickhouse::query::Query| {
                q.param("lo", lo)
                    .param("hi", hi)
                    .param("plo", lo - lookback)
                    .param("chi", hi + lookback)
                    .param("settled", settled)
                    .param("region_attrs", &self.settings.graph_region_attributes)
                    .param("computed", computed)
                    .param("minutes", &minutes)
            };
            let values = rules::value_columns();
            bind(self.client.query(&format!(
                "INSERT INTO orrery_graph_edges_1m (Minute, ComputedAt, Caller, Callee, CallerRegion,
                    CalleeRegion, CalleeKind, {values})
                 SELECT Minute, {{computed:UInt64}}, Caller, Callee, CallerRegion, CalleeRegion,
                    CalleeKind, {values}
                 FROM ({})",
                over_spans(&rules::edge_rows_sql(minute_filter::LISTED))
            )))
            .execute()
            .await
            .context("backfilling edges from spans")?;
            bind(self.client.query(&format!(
                "INSERT INTO orrery_graph_nodes_1m (Minute, ComputedAt, Service, Region, Instance, {values})
                 SELECT Minute, {{computed:UInt64}}, Service, Region, Instance, {values}
                 FROM ({})",
                over_spans(&rules::node_rows_sql(minute_filter::LISTED))
            )))
            .execute()
            .await
            .context("backfilling nodes from spans")?;
            let rows: Vec<(u32, u64, u64)> = self
                .client
                .query(&format!(
                    "SELECT toUInt32(Minute), sumIf(Requests, {}), sumIf(Requests, {})
                     FROM orrery_graph_edges_1m
                     WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({{lo:Int64}}))
                       AND Minute < toDateTime(fromUnixTimestamp64Nano({{hi:Int64}}))
                       AND ComputedAt = {{computed:UInt64}}
                     GROUP BY Minute",
                    rules::IS_ORPHAN_ROW,
                    rules::IS_VIRTUAL_ROW
                ))
                .param("lo", lo)
                .param("hi", hi)
                .param("computed", computed)
                .fetch_all()
                .await
                .context("reading backfill quality counts")?;
            quality = rows.into_iter().map(|(m, o, u)| (m, (o, u))).collect();
        }
        let mut insert = self
            .client
            .insert::<MinuteMarker>("orrery_graph_minutes")
            .await
            .context("writing backfill minute markers")?;
        for &(minute, (spans, late)) in batch {
            let m = (minute / 1_000_000_000) as u32;
            let (orphans, unmatched) = quality.get(&m).copied().unwrap_or((0, 0));
            insert
                .write(&MinuteMarker {
                    minute: m,
                    computed_at: computed,
                    spans,
                    orphans,
                    unmatched,
                    late,
                })
                .await?;
        }
        insert
            .end()
            .await
            .context("writing backfill minute markers")?;
        Ok(())
    }

    /// Hour rows of `hours` (ns) from the latest rows of their minutes, then their markers:
    /// [`Rollup::compute_hour`] for several hours in one set of statements.
    async fn compute_hours(&self, hours: &[i64]) -> Result<()> {
        let computed = self.next_computed_at();
        let secs: Vec<u32> = hours.iter().map(|h| (h / 1_000_000_000) as u32).collect();
        let lo = secs.iter().copied().min().unwrap_or(0);
        let hi = secs.iter().copied().max().unwrap_or(0) + 3600;
        let minutes: Vec<MinuteVersion> = self
            .client
            .query(
                "SELECT toUInt32(Minute) AS minute, max(ComputedAt) AS computed_at
FROM orrery_graph_minutes
WHERE Minute >= toDateTime({lo:UInt32}) AND Minute < toDateTime({hi:UInt32})
    AND has({hours:Array(UInt32)}, toUInt32(toStartOfHour(Minute)))
GROUP BY Minute",
            )
            .param("lo", lo)
            .param("hi", hi)
            .param("hours", &secs)
            .fetch_all()
            .await
            .context("reading the hours' minute markers")?;
        let mut versions: BTreeMap<u32, u64> = secs.iter().map(|h| (*h, 0)).collect();
        for m in &minutes {
            *versions.entry(m.minute - m.minute % 3600).or_default() += m.computed_at;
        }
        let pairs: Vec<(u32, u64)> = minutes.iter().map(|m| (m.minute, m.computed_at)).collect();
        let filter = "Minute >= toDateTime({lo:UInt32}) AND Minute < toDateTime({hi:UInt32})
    AND (toUInt32(Minute), ComputedAt) IN {pairs:Array(Tuple(UInt32, UInt64))}";
        let bind = |q: clickhouse::query::Query| {
            q.param("lo", lo)
                .param("hi", hi)
                .param("pairs", &pairs)
                .param("computed", computed)
        };
        let (values, merged) = (calls::value_columns(), calls::merged_count_columns());
        const EDGE_KEYS: &str = "Caller, Callee, CallerRegion, CalleeRegion, CalleeKind";
        const NODE_KEYS: &str = "Service, Region, Instance";
        // (table, its key columns, what is selected for them, grouped by, from)
        for (table, columns, select_keys, keys, source) in [
            (
                "orrery_graph_edges_1h",
                EDGE_KEYS,
                EDGE_KEYS,
                EDGE_KEYS,
                "orrery_graph_edges_1m",
            ),
            (
                "orrery_graph_services_1h",
                EDGE_KEYS,
                "Caller, Callee, any(CallerRegion), any(CalleeRegion), CalleeKind",
                "Caller, Callee, CalleeKind",
                "orrery_graph_edges_1m",
            ),
            (
                "orrery_graph_nodes_1h",
                NODE_KEYS,
                NODE_KEYS,
                NODE_KEYS,
                "orrery_graph_nodes_1m",
            ),
        ] {
            bind(self.client.query(&format!(
                "INSERT INTO {table} (Hour, ComputedAt, {columns}, {values})
                 SELECT toStartOfHour(Minute) AS H, {{computed:UInt64}}, {select_keys}, {merged}
                 FROM {source} WHERE {filter}
                 GROUP BY H, {keys}"
            )))
            .execute()
            .await
            .with_context(|| format!("backfilling {table}"))?;
        }
        let mut insert = self
            .client
            .insert::<HourMarker>("orrery_graph_hours")
            .await
            .context("writing backfilled hour markers")?;
        for (hour, version) in versions {
            insert
                .write(&HourMarker {
                    hour,
                    computed_at: computed,
                    minutes_version: version,
                })
                .await?;
        }
        insert
            .end()
            .await
            .context("writing backfilled hour markers")?;
        Ok(())
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
        loop {
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
                match result {
                    Ok(Ok((hours, late))) => {
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
                    }
                    Ok(Err(err)) => {
                        metrics::inc(&metrics::ROLLUP_FAILURES);
                        tracing::warn!(from = %utc(*group.last().unwrap_or(&0)), hours = group.len(),
                            error = %format!("{err:#}"), "rollup backfill: step failed; retried next pass");
                        if pause(RETRY).await {
                            return;
                        }
                    }
                    Err(_) => {
                        metrics::inc(&metrics::ROLLUP_FAILURES);
                        tracing::warn!(from = %utc(*group.last().unwrap_or(&0)), hours = group.len(),
                            timeout_s = step_timeout.as_secs(),
                            "rollup backfill: step over --graph-backfill-step-timeout; retried next pass");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_minutes_read_spans_with_the_call_views_own_expressions() {
        use orrery_store::graph_rules::{self as rules, minute_filter};
        for sql in [
            over_spans(&rules::edge_rows_sql(minute_filter::LISTED)),
            over_spans(&rules::node_rows_sql(minute_filter::LISTED)),
        ] {
            assert!(!sql.contains("orrery_span_calls"), "{sql}");
            assert!(sql.contains("FROM otel_traces"), "{sql}");
            assert!(
                sql.contains("cityHash64(TraceId, SpanId) AS SpanKey"),
                "{sql}"
            );
        }
        assert_eq!(
            rules::edge_rows_sql(minute_filter::LISTED)
                .matches("FROM orrery_span_calls")
                .count(),
            over_spans(&rules::edge_rows_sql(minute_filter::LISTED))
                .matches("AS SpanKey")
                .count()
        );
    }

    #[test]
    fn hours_are_named_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00Z");
        assert_eq!(utc(1_796_000_400 * 1_000_000_000), "2026-11-30T01:00Z");
        assert_eq!(utc(951_782_400 * 1_000_000_000), "2000-02-29T00:00Z");
    }
}
