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
//!
//! Each pass also says when the next one should run ([`SlotPass::next_ns`]): the moment the
//! next slot can close, or an unsettled slot's last stored span settles. The rollup's loop
//! wakes then rather than on a fixed 5 s tick, so a slot is rolled up as soon as the rule
//! allows and a graph's live tail (the spans after the last closed slot, joined on every read)
//! is ~2.5 s shorter on average: 5–15 s plus the pass's own time instead of 5–20 s.

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

/// The earliest time (ns) a slot pass at `now_ns` could close a slot it did not: when the
/// next slot ends `grace` ago, or when the last-ending stored span of a slot left unsettled
/// (`unsettled_ends`: the latest end, ns, of its unsettled spans) has settled — a span is
/// settled once it ended strictly before now minus the grace, hence the extra millisecond.
pub fn next_slot_pass(
    now_ns: i64,
    grace: std::time::Duration,
    unsettled_ends: impl IntoIterator<Item = i64>,
) -> i64 {
    let grace = grace.as_nanos() as i64;
    let next_close = slots_closed_before(now_ns, std::time::Duration::from_nanos(grace as u64))
        + SLOT_NS
        + grace;
    unsettled_ends
        .into_iter()
        .map(|end| end.saturating_add(grace).saturating_add(1_000_000))
        .fold(next_close, i64::min)
}

/// What one slot pass did and when the next one can close a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPass {
    /// The slots computed (ns).
    pub computed: Vec<i64>,
    /// [`next_slot_pass`]: when the next pass can close a slot (ns; later passes only notice
    /// late spans).
    pub next_ns: i64,
}

#[derive(Row, Deserialize)]
struct Unsettled {
    slot: i64,
    spans: u64,
    /// The latest end (ns) of the slot's unsettled spans.
    ends: i64,
}

impl Rollup {
    /// Rolls up the closed slots of `[minute rollup end - 2 min, now - grace)` that are
    /// unmarked or stale and whose stored spans have all settled; returns the slots computed
    /// (ns).
    pub async fn run_slots(&self, now_ns: i64) -> Result<Vec<i64>> {
        Ok(self.slot_pass(now_ns).await?.computed)
    }

    /// [`Rollup::run_slots`], and when the next pass can close a slot ([`next_slot_pass`]).
    pub async fn slot_pass(&self, now_ns: i64) -> Result<SlotPass> {
        let started_ns = crate::now_ns();
        let grace = self.settings.graph_grace;
        let minutes_end = floor_minute(now_ns - self.settings.graph_rollup_delay.as_nanos() as i64);
        let lo = minutes_end - SLOT_LOOKBACK_NS;
        let hi = slots_closed_before(now_ns, grace);
        if hi <= lo {
            return Ok(SlotPass {
                computed: Vec::new(),
                next_ns: next_slot_pass(now_ns, grace, []),
            });
        }
        let (marks, counts) = read_slots(&self.client, lo, hi).await?;
        let mut todo: Vec<(i64, u64)> = Vec::new();
        for slot in (lo..hi).step_by(SLOT_NS as usize) {
            let spans = counts.get(&slot).copied().unwrap_or(0);
            if marks.get(&slot).is_none_or(|m: &SlotMark| m.spans != spans) {
                todo.push((slot, spans));
            }
        }
        let settled = now_ns - grace.as_nanos() as i64;
        let unsettled = self.unsettled_slots(&todo, settled).await?;
        todo.retain(|(slot, _)| !unsettled.iter().any(|u| u.0 == *slot));
        for &(slot, spans) in todo.iter().rev() {
            self.compute_slot(slot, spans, settled, started_ns).await?;
        }
        Ok(SlotPass {
            computed: todo.into_iter().map(|(s, _)| s).collect(),
            next_ns: next_slot_pass(now_ns, grace, unsettled.iter().map(|u| u.1)),
        })
    }

    /// The slots of `todo` holding a stored span not yet settled at `settled` (ns), each with
    /// the latest end (ns) of those spans: one statement over their range of the call copy
    /// (two columns, a few seconds of spans).
    async fn unsettled_slots(&self, todo: &[(i64, u64)], settled: i64) -> Result<Vec<(i64, i64)>> {
        let busy: Vec<i64> = todo.iter().filter(|t| t.1 > 0).map(|t| t.0).collect();
        let (Some(lo), Some(hi)) = (busy.iter().min(), busy.iter().max()) else {
            return Ok(Vec::new());
        };
        let rows: Vec<Unsettled> = self
            .client
            .query(&format!(
                "SELECT toInt64(intDiv(toInt64(toUnixTimestamp64Nano(Timestamp)), {SLOT_NS}) * {SLOT_NS}) AS slot,
    count() AS spans,
    max(toInt64(toUnixTimestamp64Nano(Timestamp)) + toInt64(Duration)) AS ends
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
            .map(|r| (r.slot, r.ends))
            .collect())
    }

    /// Edge and node rows of one slot from its spans (those settled at `settled`), then its
    /// marker; by a pass that started at `started_ns`.
    async fn compute_slot(
        &self,
        slot: i64,
        spans: u64,
        settled: i64,
        started_ns: i64,
    ) -> Result<()> {
        let computed = self.next_computed_at(started_ns);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn the_next_pass_is_when_a_slot_can_close_and_never_overflows() {
        let grace = Duration::from_secs(5);
        let slot = 1_800_000_000 * SEC;
        // 3 s after a slot ended: it closes 2 s later (its end + grace).
        let now = slot + SLOT_NS + 3 * SEC;
        assert_eq!(next_slot_pass(now, grace, []), slot + SLOT_NS + 5 * SEC);
        // Just after that moment, the next slot's close is next.
        let now = slot + SLOT_NS + 5 * SEC;
        assert_eq!(next_slot_pass(now, grace, []), slot + 2 * SLOT_NS + 5 * SEC);
        // Slots left unsettled: a millisecond after the first of them can close (its
        // last-ending stored span settles), if sooner.
        let end = slot + SLOT_NS + 500_000_000;
        assert_eq!(
            next_slot_pass(now, grace, [end, end - SEC]),
            end - SEC + 5 * SEC + 1_000_000
        );
        // A span ending after the next slot's close does not delay that close.
        assert_eq!(
            next_slot_pass(now, grace, [slot + 60 * SEC]),
            slot + 2 * SLOT_NS + 5 * SEC
        );
        // Poison durations (an end near i64::MAX, or wrapped below zero) neither panic nor
        // delay the next close.
        assert_eq!(
            next_slot_pass(now, grace, [i64::MAX - 1]),
            slot + 2 * SLOT_NS + 5 * SEC
        );
        assert!(next_slot_pass(now, grace, [i64::MIN + 1]) < now);
    }
}
