//! Merging hours: hour rows from the latest rows of their minutes, then the hours' markers.
//! One implementation for the minute rollup (`rollup.rs`, the hours of its horizon, one at a
//! time) and the hourly backfill (`backfill.rs`, several consecutive hours per step).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::Rollup;

#[derive(Row, Deserialize, Debug)]
struct MinuteVersion {
    minute: u32,
    computed_at: u64,
    spans: u64,
}

#[derive(Row, Serialize)]
struct HourMarker {
    #[serde(rename = "Hour")]
    hour: u32,
    #[serde(rename = "ComputedAt")]
    computed_at: u64,
    #[serde(rename = "MinutesVersion")]
    minutes_version: u64,
    /// Spans its minutes' markers saw (schema v14): what judges the hour once its minutes are
    /// gone.
    #[serde(rename = "Spans")]
    spans: i64,
}

/// The hour (Unix seconds) a `Minute` column's value is in: arithmetic on the Unix time, not
/// `toStartOfHour`, whose hours follow the server's time zone (not whole UTC hours in every
/// zone), while hour markers and readers count whole UTC hours.
const HOUR_OF_MINUTE: &str = super::merge::HOURS.unit_of;

impl Rollup {
    /// Hour rows of `hours` (ns, whole hours) from the latest rows of their minutes, then
    /// their markers. Each hour's version is the sum of the minute markers its rows are
    /// selected by (read once, bound to every statement), so a minute recomputed meanwhile
    /// only makes its hour stale (merged again by the next run).
    pub(super) async fn compute_hours(&self, hours: &[i64]) -> Result<()> {
        let computed = self.next_computed_at(crate::now_ns());
        let secs: Vec<u32> = hours.iter().map(|h| (h / 1_000_000_000) as u32).collect();
        let lo = secs.iter().copied().min().unwrap_or(0);
        let hi = secs.iter().copied().max().unwrap_or(0) + 3600;
        let minutes: Vec<MinuteVersion> = self
            .client
            .query(&format!(
                "SELECT toUInt32(Minute) AS minute, max(ComputedAt) AS computed_at,
    argMax(Spans, ComputedAt) AS spans
FROM orrery_graph_minutes
WHERE Minute >= toDateTime({{lo:UInt32}}) AND Minute < toDateTime({{hi:UInt32}})
    AND has({{hours:Array(UInt32)}}, {HOUR_OF_MINUTE})
GROUP BY Minute"
            ))
            .param("lo", lo)
            .param("hi", hi)
            .param("hours", &secs)
            .fetch_all()
            .await
            .context("reading the hours' minute markers")?;
        let mut versions: BTreeMap<u32, (u64, u64)> = secs.iter().map(|h| (*h, (0, 0))).collect();
        for m in &minutes {
            let v = versions.entry(m.minute - m.minute % 3600).or_default();
            v.0 = v.0.wrapping_add(m.computed_at);
            v.1 += m.spans;
        }
        let pairs: Vec<(u32, u64)> = minutes.iter().map(|m| (m.minute, m.computed_at)).collect();
        self.merge_rows(&super::merge::HOURS, (lo, hi), &pairs, computed)
            .await?;
        // One insert per day, newest first: the table is partitioned by day, and an insert
        // across two days commits two parts one after the other (older first, as it happens),
        // so a reader could see an older hour of the step done while a newer one is not yet —
        // the backfill promises newest first, without a hole.
        // day → [(hour, (minutes version, spans))]
        type Day = Vec<(u32, (u64, u64))>;
        let mut by_day: BTreeMap<u32, Day> = BTreeMap::new();
        for (hour, v) in versions {
            by_day.entry(hour / 86_400).or_default().push((hour, v));
        }
        for day in by_day.into_values().rev() {
            let mut insert = self
                .client
                .insert::<HourMarker>("orrery_graph_hours")
                .await
                .context("writing hour markers")?;
            for (hour, (version, spans)) in day {
                insert
                    .write(&HourMarker {
                        hour,
                        computed_at: computed,
                        minutes_version: version,
                        spans: spans as i64,
                    })
                    .await?;
            }
            insert.end().await.context("writing hour markers")?;
        }
        Ok(())
    }
}
