//! The 10-second slots (schema v10): each closed slot after the minute rollup's range is rolled
//! up a few seconds after it ends, so a live graph reads spans only from the first slot not
//! rolled up (10–25 s of spans instead of the open minute plus the minute rollup's delay).
//! Slots are recomputed from spans like minutes: a slot without a marker, or whose count
//! (`orrery_span_slots`) changed since, and readers read a slot from spans while its count
//! differs from its marker (the rule of `graph::fetch::markers`).

use anyhow::{Context, Result};

use super::{Rollup, floor_minute, rows};
use crate::graph::fetch::markers::{MINUTE_NS, SlotMark, read_slots};
pub use crate::graph::fetch::markers::{SLOT_DELAY_NS, SLOT_NS};
use orrery_store::graph_rules::CallSource;

/// How far before the minute rollup's end slots are kept rolled up: the minute rollup runs
/// every `--graph-rollup-interval`, so the first unmarked minute trails its end by up to that.
const SLOT_LOOKBACK_NS: i64 = 2 * MINUTE_NS;

impl Rollup {
    /// Rolls up the closed slots of `[minute rollup end - 2 min, now - slot delay)` that are
    /// unmarked or stale; returns the slots computed (ns).
    pub async fn run_slots(&self, now_ns: i64) -> Result<Vec<i64>> {
        let minutes_end = floor_minute(now_ns - self.settings.graph_rollup_delay.as_nanos() as i64);
        let lo = minutes_end - SLOT_LOOKBACK_NS;
        let hi = (now_ns - SLOT_DELAY_NS).div_euclid(SLOT_NS) * SLOT_NS;
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
        for &(slot, spans) in todo.iter().rev() {
            self.compute_slot(slot, spans, settled).await?;
        }
        Ok(todo.into_iter().map(|(s, _)| s).collect())
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
