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
use crate::calls::{self, minute_filter};

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;
/// Minutes recomputed per run at most (keeps one run bounded; backfill continues next run).
const MAX_MINUTES_PER_RUN: usize = 1440;
/// Minutes computed by one set of queries.
const MINUTES_PER_BATCH: usize = 60;

pub struct Rollup {
    client: Client,
    settings: GraphArgs,
    last_computed_ms: std::sync::atomic::AtomicU64,
}

#[derive(Row, Deserialize, Debug)]
struct MinuteCount {
    minute: u32,
    spans: u64,
}

#[derive(Row, Deserialize, Debug)]
struct Marker {
    minute: u32,
    spans: u64,
    late: u64,
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
            last_computed_ms: Default::default(),
        }
    }

    /// Runs until `shutdown`, logging (not failing on) errors: ClickHouse may be briefly away.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut runs: u64 = 0;
        // A backfill is done in runs of at most MAX_MINUTES_PER_RUN minutes, back to back.
        let mut backfilling = false;
        loop {
            let lookback = if backfilling || runs.is_multiple_of(100) {
                self.settings.graph_rollup_backfill
            } else {
                self.settings.graph_rollup_lookback
            };
            backfilling = false;
            match self.run_once(crate::now_ns(), lookback).await {
                Ok(r) if !r.computed.is_empty() => {
                    backfilling = r.computed.len() >= MAX_MINUTES_PER_RUN;
                    tracing::debug!(minutes = r.computed.len(), late = r.late_spans, "rolled up")
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "service-graph rollup failed")
                }
            }
            runs += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.graph_rollup_interval) => {}
            }
        }
    }

    /// One pass at time `now_ns` over closed minutes within `lookback`.
    pub async fn run_once(&self, now_ns: i64, lookback: Duration) -> Result<RunReport> {
        let hi = floor_minute(now_ns - self.settings.graph_rollup_delay.as_nanos() as i64);
        let lo = floor_minute(now_ns - lookback.as_nanos() as i64);
        if hi <= lo {
            return Ok(RunReport::default());
        }
        let counts: Vec<MinuteCount> = self
            .client
            .query(&format!(
                "SELECT toUInt32(Minute) AS minute, Spans AS spans FROM ({})",
                calls::SPANS_PER_MINUTE_SQL
            ))
            .param("lo", lo)
            .param("hi", hi)
            .fetch_all()
            .await
            .context("counting spans per minute")?;
        let markers: Vec<Marker> = self
            .client
            .query(
                "SELECT toUInt32(Minute) AS minute, argMax(Spans, ComputedAt) AS spans,
                    argMax(Late, ComputedAt) AS late
                 FROM orrery_graph_minutes
                 WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
                   AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
                 GROUP BY Minute",
            )
            .param("lo", lo)
            .param("hi", hi)
            .fetch_all()
            .await
            .context("reading rollup markers")?;
        let markers: BTreeMap<i64, &Marker> = markers
            .iter()
            .map(|m| (m.minute as i64 * 1_000_000_000, m))
            .collect();
        let counts: BTreeMap<i64, u64> = counts
            .iter()
            .map(|c| (c.minute as i64 * 1_000_000_000, c.spans))
            .collect();

        // minute -> (spans now, late spans so far)
        let mut dirty: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        let mut late_total = 0;
        let mut follow: BTreeSet<i64> = BTreeSet::new();
        // Every closed minute gets a marker, empty ones too (with 0 spans), so readers know
        // the whole range up to the frontier is rolled up and skip reading spans for it.
        let all_minutes = (lo..hi)
            .step_by(MINUTE_NS as usize)
            .map(|m| (m, counts.get(&m).copied()));
        for (minute, count) in all_minutes {
            let spans = count.unwrap_or(0);
            let changed = match markers.get(&minute) {
                None => {
                    dirty.insert(minute, (spans, 0));
                    true
                }
                // No count for a rolled-up minute: spans stored before schema v4 (not counted
                // by its view) keep the rollup made from them.
                Some(_) if count.is_none() => false,
                Some(m) if m.spans != spans => {
                    // A minute marked empty was not rolled up with data: its first spans are
                    // not counted late (as before empty minutes were marked).
                    let late = if m.spans == 0 {
                        0
                    } else {
                        spans.saturating_sub(m.spans)
                    };
                    late_total += late;
                    dirty.insert(minute, (spans, m.late + late));
                    true
                }
                Some(_) => false,
            };
            if changed {
                follow.insert(minute + MINUTE_NS);
                follow.insert(minute + 2 * MINUTE_NS);
            }
        }
        // Only minutes already rolled up can be stale; the others are computed when they close.
        for minute in follow {
            if minute < hi && markers.contains_key(&minute) && !dirty.contains_key(&minute) {
                let spans = counts.get(&minute).copied().unwrap_or(0);
                let late = markers.get(&minute).map(|m| m.late).unwrap_or(0);
                dirty.insert(minute, (spans, late));
            }
        }
        let mut report = RunReport {
            late_spans: late_total,
            ..Default::default()
        };
        // Newest first (the minutes the live view most likely shows), in batches: one
        // computation per batch, since each query pays a scan of the time range.
        let todo: Vec<(i64, (u64, u64))> = dirty
            .iter()
            .rev()
            .take(MAX_MINUTES_PER_RUN)
            .map(|(m, v)| (*m, *v))
            .collect();
        for batch in todo.chunks(MINUTES_PER_BATCH) {
            self.compute_minutes(batch, now_ns).await?;
            report.computed.extend(batch.iter().map(|(m, _)| *m));
        }
        self.roll_up_hours(lo, hi).await?;
        Ok(report)
    }

    /// Merges the minute rows of every closed hour in `[lo, hi)` whose hour rows are missing or
    /// stale (a minute of it was computed since) into hourly rows.
    async fn roll_up_hours(&self, lo: i64, hi: i64) -> Result<()> {
        let first = lo.div_euclid(HOUR_NS) * HOUR_NS;
        let rolled = crate::graph::fetch::Rolled::read(&self.client, first, hi).await?;
        for hour in rolled.stale_hours(first, hi).into_iter().rev() {
            self.compute_hour(HourVersion {
                hour: (hour / 1_000_000_000) as u32,
            })
            .await?;
        }
        Ok(())
    }

    /// Hour rows from the latest rows of its minutes, then the hour's marker. The version is
    /// computed from the same minute markers the rows are selected by, in the same statement
    /// for both, so a minute recomputed meanwhile only makes the hour stale (recomputed next run).
    async fn compute_hour(&self, hv: HourVersion) -> Result<()> {
        let computed = self.next_computed_at();
        let minutes: Vec<MinuteVersion> = self
            .client
            .query(
                "SELECT toUInt32(Minute) AS minute, max(ComputedAt) AS computed_at
FROM orrery_graph_minutes
WHERE Minute >= toDateTime({hour:UInt32}) AND Minute < toDateTime({hour:UInt32}) + 3600
GROUP BY Minute",
            )
            .param("hour", hv.hour)
            .fetch_all()
            .await
            .context("reading the hour's minute markers")?;
        let version: u64 = minutes.iter().map(|m| m.computed_at).sum();
        let pairs: Vec<(u32, u64)> = minutes.iter().map(|m| (m.minute, m.computed_at)).collect();
        let filter =
            "Minute >= toDateTime({hour:UInt32}) AND Minute < toDateTime({hour:UInt32}) + 3600
    AND (toUInt32(Minute), ComputedAt) IN {pairs:Array(Tuple(UInt32, UInt64))}";
        let bind = |q: clickhouse::query::Query| {
            q.param("hour", hv.hour)
                .param("pairs", &pairs)
                .param("computed", computed)
        };
        let (values, merged) = (calls::value_columns(), calls::merged_count_columns());
        bind(self.client.query(&format!(
            "INSERT INTO orrery_graph_edges_1h (Hour, ComputedAt, Caller, Callee, CallerRegion,
                CalleeRegion, CalleeKind, {values})
             SELECT toDateTime({{hour:UInt32}}), {{computed:UInt64}}, Caller, Callee, CallerRegion,
                CalleeRegion, CalleeKind, {merged}
             FROM orrery_graph_edges_1m WHERE {filter}
             GROUP BY Caller, Callee, CallerRegion, CalleeRegion, CalleeKind"
        )))
        .execute()
        .await
        .context("rolling up an hour of edges")?;
        bind(self.client.query(&format!(
            "INSERT INTO orrery_graph_services_1h (Hour, ComputedAt, Caller, Callee, CallerRegion,
                CalleeRegion, CalleeKind, {values})
             SELECT toDateTime({{hour:UInt32}}), {{computed:UInt64}}, Caller, Callee,
                any(CallerRegion), any(CalleeRegion), CalleeKind, {merged}
             FROM orrery_graph_edges_1m WHERE {filter}
             GROUP BY Caller, Callee, CalleeKind"
        )))
        .execute()
        .await
        .context("rolling up an hour of service-to-service edges")?;
        bind(self.client.query(&format!(
            "INSERT INTO orrery_graph_nodes_1h (Hour, ComputedAt, Service, Region, Instance, {values})
             SELECT toDateTime({{hour:UInt32}}), {{computed:UInt64}}, Service, Region, Instance,
                {merged}
             FROM orrery_graph_nodes_1m WHERE {filter}
             GROUP BY Service, Region, Instance"
        )))
        .execute()
        .await
        .context("rolling up an hour of nodes")?;
        self.client
            .query(
                "INSERT INTO orrery_graph_hours (Hour, ComputedAt, MinutesVersion)
                 VALUES (toDateTime({hour:UInt32}), {computed:UInt64}, {version:UInt64})",
            )
            .param("hour", hv.hour)
            .param("computed", computed)
            .param("version", version)
            .execute()
            .await
            .context("writing the hour marker")?;
        Ok(())
    }

    fn next_computed_at(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let now = (crate::now_ns() / 1_000_000) as u64;
        let prev = self.last_computed_ms.load(Ordering::Relaxed);
        let v = now.max(prev + 1);
        self.last_computed_ms.store(v, Ordering::Relaxed);
        v
    }

    /// Recomputes minutes `(minute, (spans, late))` from spans: edges, nodes, then markers.
    async fn compute_minutes(&self, batch: &[(i64, (u64, u64))], now_ns: i64) -> Result<()> {
        let computed = self.next_computed_at();
        // Empty minutes only get their marker: a first backfill marks a day of them.
        let busy: Vec<i64> = batch
            .iter()
            .filter(|(_, (spans, _))| *spans > 0)
            .map(|(m, _)| *m)
            .collect();
        let quality = if busy.is_empty() {
            Vec::new()
        } else {
            self.compute_rows(&busy, computed, now_ns).await?
        };
        let quality: BTreeMap<u32, &MinuteQuality> =
            quality.iter().map(|q| (q.minute, q)).collect();
        let mut insert = self
            .client
            .insert::<MarkerRow>("orrery_graph_minutes")
            .await
            .context("writing rollup markers")?;
        for (minute, (spans, late)) in batch {
            let m = (minute / 1_000_000_000) as u32;
            let q = quality.get(&m);
            insert
                .write(&MarkerRow {
                    minute: m,
                    computed_at: computed,
                    spans: *spans,
                    orphans: q.map(|q| q.orphans).unwrap_or(0),
                    unmatched: q.map(|q| q.unmatched).unwrap_or(0),
                    late: *late,
                })
                .await?;
        }
        insert.end().await.context("writing rollup markers")?;
        Ok(())
    }

    /// Edge and node rows of the minutes `busy` (ns) with `computed`; their quality counts.
    async fn compute_rows(
        &self,
        busy: &[i64],
        computed: u64,
        now_ns: i64,
    ) -> Result<Vec<MinuteQuality>> {
        let lookback = self.settings.graph_parent_lookback.as_nanos() as i64;
        let settled = now_ns - self.settings.graph_grace.as_nanos() as i64;
        let lo = busy.iter().copied().min().unwrap_or(0);
        let hi = busy.iter().copied().max().unwrap_or(0) + MINUTE_NS;
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
        let values = calls::value_columns();
        bind(self.client.query(&format!(
            "INSERT INTO orrery_graph_edges_1m (Minute, ComputedAt, Caller, Callee, CallerRegion,
                CalleeRegion, CalleeKind, {values})
             SELECT Minute, {{computed:UInt64}}, Caller, Callee, CallerRegion, CalleeRegion,
                CalleeKind, {values}
             FROM ({})",
            calls::edge_rows_sql(minute_filter::LISTED)
        )))
        .execute()
        .await
        .context("rolling up edges")?;
        bind(self.client.query(&format!(
            "INSERT INTO orrery_graph_nodes_1m (Minute, ComputedAt, Service, Region, Instance, {values})
             SELECT Minute, {{computed:UInt64}}, Service, Region, Instance, {values}
             FROM ({})",
            calls::node_rows_sql(minute_filter::LISTED)
        )))
        .execute()
        .await
        .context("rolling up nodes")?;
        let quality: Vec<MinuteQuality> = self
            .client
            .query(
                "SELECT toUInt32(Minute) AS minute,
                    sumIf(Requests, CalleeKind = 'orphan') AS orphans,
                    sumIf(Requests, CalleeKind IN ('database', 'queue', 'external')) AS unmatched
                 FROM orrery_graph_edges_1m
                 WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
                   AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
                   AND ComputedAt = {computed:UInt64}
                 GROUP BY Minute",
            )
            .param("lo", lo)
            .param("hi", hi)
            .param("computed", computed)
            .fetch_all()
            .await
            .context("reading rollup quality counts")?;
        Ok(quality)
    }
}

struct HourVersion {
    hour: u32,
}

#[derive(Row, Deserialize, Debug)]
struct MinuteVersion {
    minute: u32,
    computed_at: u64,
}

#[derive(Row, Deserialize, Debug)]
struct MinuteQuality {
    minute: u32,
    orphans: u64,
    unmatched: u64,
}

#[derive(Row, serde::Serialize, Debug)]
struct MarkerRow {
    #[serde(rename = "Minute")]
    minute: u32,
    #[serde(rename = "ComputedAt")]
    computed_at: u64,
    #[serde(rename = "Spans")]
    spans: u64,
    #[serde(rename = "Orphans")]
    orphans: u64,
    #[serde(rename = "Unmatched")]
    unmatched: u64,
    #[serde(rename = "Late")]
    late: u64,
}
