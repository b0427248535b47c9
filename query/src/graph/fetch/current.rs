//! The exactness rule — the one rule both the rollup job and graph readers decide by: which
//! minutes, hours, days and slots are rolled up *and current*, and what a window's data
//! quality is. [`super::coverage`] plans a window's reads from it.
//!
//! A minute is current when it has a marker and the span count counted on insert
//! (`orrery_span_minutes`) still equals the count its latest marker saw. A minute whose count
//! changed since (spans backdated into it: a late root, a slow exporter, a replayed batch) is
//! *stale*: readers compute it from spans until the rollup recomputes it, so late spans are in
//! the very next graph read. A late span can change its neighbours' calls too (a late parent
//! turns its children in the next minutes from orphans into edges; a late child makes its
//! parent client span in the minute before no longer a virtual edge), so the minute before and
//! the two after a stale minute are read live and recomputed with it. Hours a graph read
//! summed up ([`super::markers::HourSum`]) are current by construction: all 60 minutes marked
//! and current, and so are the hours either side.

use std::collections::BTreeSet;

use super::Window;
use super::coverage::Coverage;
use super::markers::{DAY_S, HOUR_NS, MINUTE_NS, Rolled, SLOT_NS};

/// Spans in a window and late spans (noticed by the rollup, or pending: in stale minutes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityAgg {
    pub spans: u64,
    pub late: u64,
}

impl Rolled {
    /// The marked minute's count changed since its marker (spans stored into it after it was
    /// rolled up). A marked minute with no count at all holds spans stored before schema v4
    /// (not counted by its view): its rollup stays good.
    pub fn is_stale(&self, minute: i64) -> bool {
        match (self.minutes.get(&minute), self.spans.get(&minute)) {
            (Some(mark), Some(&now)) => mark.spans != now,
            _ => false,
        }
    }

    /// Late spans a stale minute holds beyond its marker (0 for a minute marked empty: its
    /// first spans are not late, it was never rolled up with data).
    pub fn pending_late(&self, minute: i64) -> u64 {
        match (self.minutes.get(&minute), self.spans.get(&minute)) {
            (Some(mark), Some(&now)) if mark.spans > 0 => now.saturating_sub(mark.spans),
            _ => 0,
        }
    }

    /// Marked minutes in `[lo, hi)` that are not current: the stale ones and the minute before
    /// and two after each (when marked and inside the range), whose calls a late span changes.
    /// (A summed-up hour has no stale minute and no stale neighbour: nothing here.)
    pub fn outdated(&self, lo: i64, hi: i64) -> BTreeSet<i64> {
        let mut out = BTreeSet::new();
        for (&m, _) in self.minutes.range(lo..hi) {
            if self.is_stale(m) {
                for n in [m - MINUTE_NS, m, m + MINUTE_NS, m + 2 * MINUTE_NS] {
                    if n >= lo && n < hi && self.minutes.contains_key(&n) {
                        out.insert(n);
                    }
                }
            }
        }
        out
    }

    /// Spans in `w` (counted on insert) and late spans (as the rollup recorded them, plus
    /// those stale minutes hold now).
    pub fn quality(&self, w: Window) -> QualityAgg {
        let mut q = QualityAgg::default();
        for (m, n) in self.spans.range(w.lo..w.hi) {
            if !self.minutes.contains_key(m) || self.is_stale(*m) {
                q.spans += n;
            }
        }
        for (m, mark) in self.minutes.range(w.lo..w.hi) {
            if !self.is_stale(*m) {
                q.spans += mark.spans;
            }
            q.late += mark.late + self.pending_late(*m);
        }
        for (_, h) in self.summarized_in(w.lo, w.hi) {
            q.spans += h.spans;
            q.late += h.late;
        }
        q
    }

    /// Summed-up hours wholly inside `[lo, hi)`.
    pub(super) fn summarized_in(
        &self,
        lo: i64,
        hi: i64,
    ) -> impl Iterator<Item = (i64, &super::markers::HourSum)> + '_ {
        self.summarized
            .range(lo..hi)
            .filter(move |(h, _)| **h + HOUR_NS <= hi)
            .map(|(h, s)| (*h, s))
    }

    /// Spans (counted on insert) in the ranges `c` leaves out.
    pub fn uncovered_spans(&self, c: &Coverage) -> u64 {
        c.uncovered
            .iter()
            .map(|&(lo, hi)| self.spans.range(lo..hi).map(|(_, n)| n).sum::<u64>())
            .sum()
    }

    /// Sum of the latest `ComputedAt` of the hour's minutes, and how many are marked. The sum
    /// wraps, as the engine's does: `ComputedAt`s are large (orrery_store::computed_at) and a
    /// version is compared for equality only.
    pub fn minutes_version(&self, hour: i64) -> (u64, usize) {
        if let Some(h) = self.summarized.get(&hour) {
            return (h.version, 60);
        }
        let v = self.minutes.range(hour..hour + HOUR_NS);
        (
            v.clone()
                .fold(0u64, |sum, (_, c)| sum.wrapping_add(c.computed_at)),
            v.count(),
        )
    }

    /// Hours whose rows were made from the current computation of each of their minutes (the
    /// hours of a day taken whole by its count are summed up with their hour marker's version:
    /// current here, see [`Rolled::day_quiet`]).
    pub(super) fn current_hours(&self) -> impl Iterator<Item = i64> + '_ {
        self.hours
            .iter()
            .filter(|(h, v)| self.minutes_version(**h).0 == **v)
            .map(|(h, _)| *h)
    }

    /// Closed hours in `[lo, hi)` with all 60 minutes marked whose hour rows are missing or
    /// made from older minute computations.
    pub fn stale_hours(&self, lo: i64, hi: i64) -> Vec<i64> {
        let first = lo.div_euclid(HOUR_NS) * HOUR_NS;
        (first..hi)
            .step_by(HOUR_NS as usize)
            .filter(|&h| h >= lo && h + HOUR_NS <= hi)
            .filter(|&h| {
                let (v, n) = self.minutes_version(h);
                n == 60 && self.hours.get(&h) != Some(&v)
            })
            .collect()
    }

    /// The marked minutes of `[lo, hi)` as ascending, disjoint ranges: runs of marked minutes
    /// and summed-up hours.
    pub(super) fn marked_ranges(&self, lo: i64, hi: i64) -> Vec<(i64, i64)> {
        let mut all: Vec<(i64, i64)> = self
            .minutes
            .range(lo..hi)
            .map(|(m, _)| (*m, *m + MINUTE_NS))
            .chain(self.summarized_in(lo, hi).map(|(h, _)| (h, h + HOUR_NS)))
            .collect();
        all.sort_unstable();
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(all.len());
        for (a, b) in all {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    }

    /// The UTC days (Unix seconds, ascending) all of whose 24 hours are in `hours` (read from
    /// hourly rows: current, inside the window and before `live_lo`, touching no live or
    /// uncovered range) and whose day marker was merged from exactly those hours' current
    /// rows: its `HoursVersion` equals the sum of their markers' `MinutesVersion`. A version
    /// only grows (a recomputed minute's `ComputedAt` is newer, and an hour's version is the
    /// sum of its minutes'), so equal sums mean every hour is the one the day was made from;
    /// a day whose hour was re-merged since (late spans) is read from its hours until the
    /// day rollup merges it again. A day whose marker's span count (schema v15) still equals
    /// its count now ([`Rolled::days_by_count`]) is whole without the version sum.
    pub fn whole_days(&self, hours: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < hours.len() {
            let day = hours[i] - hours[i] % DAY_S;
            // `hours` is ascending: a whole day is 24 consecutive entries from its midnight.
            let whole = (0..24u32).all(|k| hours.get(i + k as usize) == Some(&(day + k * 3600)));
            if whole {
                let version: u64 = (0..24).fold(0u64, |sum, k| {
                    let at = (day as i64 + k * 3600) * 1_000_000_000;
                    sum.wrapping_add(self.hours.get(&at).copied().unwrap_or(0))
                });
                let at = day as i64 * 1_000_000_000;
                if self.days_by_count.contains(&at) || self.days.get(&at) == Some(&version) {
                    out.push(day);
                    i += 24;
                    continue;
                }
            }
            i += 1;
        }
        out
    }

    /// The end of the current slots from `lo` on: the first slot unmarked or whose count
    /// changed since its marker — and then one slot earlier, as a late span changes the slot
    /// before it too (a client span that was a virtual edge finds its child).
    pub(super) fn slot_frontier(&self, lo: i64) -> i64 {
        let mut at = lo;
        loop {
            let Some(mark) = self.slots.get(&at) else {
                return at;
            };
            if self.slot_spans.get(&at).copied().unwrap_or(0) != mark.spans {
                return (at - SLOT_NS).max(lo);
            }
            at += SLOT_NS;
        }
    }
}
