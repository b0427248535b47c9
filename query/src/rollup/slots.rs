//! The 10-second slots (schema v10): each closed slot after the minute rollup's range is rolled
//! up seconds after it ends, so a live graph reads spans only from the first slot not rolled
//! up. Slots are recomputed from spans like minutes: a slot without a marker, or whose count
//! (`orrery_span_slots`) changed since, and readers read a slot from spans while its count
//! differs from its marker (the rule of `graph::fetch::markers`).
//!
//! When a slot closes: `--graph-grace` after it ends **and** once every span stored in it has
//! settled (ended more than the grace ago). The grace is what the call rules wait before a
//! client without a child is a virtual edge, or a child without a parent an orphan; a slot
//! rolled up while one of its stored spans was unsettled would leave that call out of its rows
//! for good (its count does not change when a span settles), so such a slot is not marked
//! yet and stays in the live part for the few seconds until it settles. Spans still arriving
//! after it closed change its count and make it read live and recomputed (the exactness rule),
//! so closing it early never miscounts; it only costs a recomputation.

use anyhow::{Context, Result};
use clickhouse::Row;
use serde::Deserialize;

use super::{Rollup, floor_minute, rows};
use crate::graph::fetch::markers::{MINUTE_NS, SlotMark, read_slots};
pub use crate::graph::fetch::markers::{SLOT_DELAY_NS, SLOT_NS};
use orrery_store::graph_rules::{CallSource, SETTLED};

/// How far before the minute rollup's end slots are kept rolled up: the minute rollup runs
/// every `--graph-rollup-interval`, so the first unmarked minute trails its end by up to that.
const SLOT_LOOKBACK_NS: i64 = 2 * MINUTE_NS;

/// The end (ns, exclusive) of the slots closed at `now_ns`: those that ended `grace` ago.
pub fn slots_closed_before(now_ns: i64, grace: std::time::Duration) -> i64 {
    (now_ns - grace.as_nanos() as i64).div_euclid(SLOT_NS) * SLOT_NS
}

#[derive(Row, Deserialize)]
struct Unsettled {
    slot: i64,
    spans: u64,
}

impl Rollup {
    /// Rolls up the closed slots of `[minute rollup end - 2 min, now - grace)` that are
    /// unmarked or stale and whose stored spans have all settled; returns the slots computed
    /// (ns).
    pub async fn run_slots(&self, now_ns: i64) -> Result<Vec<i64>> {
        let minutes_end = floor_minute(now_ns - self.settings.graph_rollup_delay.as_nanos() as i64);
        let lo = minutes_end - SLOT_LOOKBACK_NS;
        let hi = slots_closed_before(now_ns, self.settings.graph_grace);
        if hi <= lo {
            return Ok(Vec::new());
        }
        let (marks, counts) = read_slots(&self.client, lo, hi).await?;
        let mut todo: Vec<(i64, u64)> = Vec::new();
        for slot in (lo..hi).step_by(SLOT_NS as usize) {
            let spans = counts.get(&slot).copied().unwrap_or(0);
            if marks.get(&slot).is_none_or(|m: &SlotMark| m.spans != spans) {
                todo.push((slot, spans));
            }
        }
        let settled = now_ns - self.settings.graph_grace.as_nanos() as i64;
        let unsettled = self.unsettled_slots(&todo, settled).await?;
        todo.retain(|(slot, _)| !unsettled.contains(slot));
        for &(slot, spans) in todo.iter().rev() {
            self.compute_slot(slot, spans, settled).await?;
        }
        Ok(todo.into_iter().map(|(s, _)| s).collect())
    }

    /// The slots of `todo` holding a stored span not yet settled at `settled` (ns): one
    /// statement over their range of the call copy (two columns, a few seconds of spans).
    async fn unsettled_slots(&self, todo: &[(i64, u64)], settled: i64) -> Result<Vec<i64>> {
        let busy: Vec<i64> = todo.iter().filter(|t| t.1 > 0).map(|t| t.0).collect();
        let (Some(lo), Some(hi)) = (busy.iter().min(), busy.iter().max()) else {
            return Ok(Vec::new());
        };
        let rows: Vec<Unsettled> = self
            .client
            .query(&format!(
                "SELECT toInt64(intDiv(toInt64(toUnixTimestamp64Nano(Timestamp)), {SLOT_NS}) * {SLOT_NS}) AS slot,
    count() AS spans
FROM orrery_span_calls
WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}})
  AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
  AND NOT ({SETTLED})
GROUP BY slot"
            ))
            .param("lo", *lo)
            .param("hi", *hi + SLOT_NS)
            .param("settled", settled)
            .fetch_all()
            .await
            .context("reading unsettled spans per slot")?;
        Ok(rows
            .into_iter()
            .filter(|r| r.spans > 0 && busy.contains(&r.slot))
            .map(|r| r.slot)
            .collect())
    }

    /// Edge and node rows of one slot from its spans, then its marker.
    async fn compute_slot(&self, slot: i64, spans: u64, settled: i64) -> Result<()> {
        let computed = self.next_computed_at();
        let at = (slot / 1_000_000_000) as u32;
        if spans > 0 {
            self.write_rows(
                &rows::SLOTS,
                CallSource::Copy,
                (slot, slot + SLOT_NS),
                settled,
                computed,
                |q| q.param("slot", at),
            )
            .await?;
        }
        self.client
            .query(
                "INSERT INTO orrery_graph_slots (Slot, ComputedAt, Spans)
                 VALUES (toDateTime({slot:UInt32}), {computed:UInt64}, {spans:UInt64})",
            )
            .param("slot", at)
            .param("computed", computed)
            .param("spans", spans)
            .execute()
            .await
            .context("writing a slot marker")?;
        Ok(())
    }
}
