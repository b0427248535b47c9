//! `ComputedAt`: which computation of a rollup unit (a slot, minute, hour or day) a row and a
//! marker belong to. Readers take each unit's rows of its latest marker's `ComputedAt` only, so
//! **two computations must never share one**, in one process or across replicas.
//!
//! Every query replica runs the rollup, and replicas wake at the same moments (a slot closes
//! at its end plus the grace on every replica's clock). When the value was the computation's
//! wall-clock millisecond alone, two replicas computing the same slot within one millisecond
//! wrote two sets of rows under one `ComputedAt`, and every graph counted that slot twice
//! until a background merge collapsed the copies (found by `tests/deploy_scale_out.rs` in CI:
//! the scaled-out map had more calls than the mesh made). So the value is the millisecond
//! shifted left by [`WRITER_BITS`] with a random per-process writer id in the low bits
//! (the millisecond a rollup pass started, which replicas woken for one slot often share):
//! ordered by time first (a later computation is larger, and any value written since
//! schema v16 is larger than every millisecond value written before it), and two replicas
//! share one only if they drew the same writer id (1 in 2^20 per pair of processes) *and*
//! computed the same unit in the same millisecond.
//!
//! Values are compared for order and equality only; sums of them (an hour's version is the sum
//! of its minutes') wrap, as the engine's `sum` of `UInt64` does. The TTL of minute rollups
//! reads the time back with [`seconds_sql`] (schema v16).

use std::sync::atomic::{AtomicU64, Ordering};

/// Low bits of a `ComputedAt` that hold the writer id.
pub const WRITER_BITS: u32 = 20;

const WRITER_MASK: u64 = (1 << WRITER_BITS) - 1;

/// One process's source of `ComputedAt` values: its writer id and the last millisecond it
/// used, so its own computations are strictly increasing even within one millisecond or
/// across a clock step back. Share one (`Arc`) between everything a process computes with.
#[derive(Debug)]
pub struct ComputedAtClock {
    writer: u64,
    last_ms: AtomicU64,
}

impl Default for ComputedAtClock {
    fn default() -> Self {
        Self::with_writer(rand::random::<u64>())
    }
}

impl ComputedAtClock {
    /// A clock with this writer id (its low [`WRITER_BITS`] bits); tests use it to give two
    /// "replicas" ids of their choosing.
    pub fn with_writer(writer: u64) -> Self {
        Self {
            writer: writer & WRITER_MASK,
            last_ms: AtomicU64::new(0),
        }
    }

    /// The `ComputedAt` of a computation starting at `now_ms` (Unix milliseconds): the later
    /// of `now_ms` and one past this clock's last millisecond, with the writer id.
    pub fn next(&self, now_ms: u64) -> u64 {
        // One atomic step: a process's loops (minutes, slots, backfill) draw from one sequence.
        let prev = self
            .last_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(now_ms.max(p + 1))
            })
            .unwrap_or_default();
        (now_ms.max(prev + 1) << WRITER_BITS) | self.writer
    }
}

/// The Unix millisecond a `ComputedAt` was taken at.
pub fn millis(computed_at: u64) -> u64 {
    computed_at >> WRITER_BITS
}

/// SQL for the Unix second of the `ComputedAt` column `col` (for `toDateTime`). A value
/// written before schema v16 (a bare millisecond) reads as a moment in 1970.
pub fn seconds_sql(col: &str) -> String {
    format!("intDiv(bitShiftRight({col}, {WRITER_BITS}), 1000)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_796_000_000_000;

    #[test]
    fn two_writers_in_one_millisecond_never_share_a_value() {
        let (a, b) = (
            ComputedAtClock::with_writer(1),
            ComputedAtClock::with_writer(2),
        );
        let (x, y) = (a.next(NOW_MS), b.next(NOW_MS));
        assert_ne!(x, y);
        assert_eq!((millis(x), millis(y)), (NOW_MS, NOW_MS));
        // Ordered by time first, whatever the writers' ids.
        let high = ComputedAtClock::with_writer(WRITER_MASK);
        assert!(high.next(NOW_MS) < a.next(NOW_MS + 5));
    }

    #[test]
    fn one_writer_is_strictly_increasing_within_a_millisecond_and_across_a_clock_step_back() {
        let c = ComputedAtClock::with_writer(7);
        let first = c.next(NOW_MS);
        let same_ms = c.next(NOW_MS);
        let stepped_back = c.next(NOW_MS - 60_000);
        assert!(first < same_ms && same_ms < stepped_back);
        assert_eq!(millis(stepped_back), NOW_MS + 2);
        assert_eq!(stepped_back & WRITER_MASK, 7);
    }

    #[test]
    fn values_stay_above_every_bare_millisecond_and_below_i64_max_for_centuries() {
        let c = ComputedAtClock::default();
        // Every value written before v16 was a bare millisecond: any new value is larger.
        assert!(c.next(NOW_MS) > NOW_MS * 1_000);
        // Year 2200 still fits in an Int64 (no sign trouble in any conversion).
        let year_2200_ms = 7_258_118_400_000u64;
        assert!(ComputedAtClock::with_writer(WRITER_MASK).next(year_2200_ms) < i64::MAX as u64);
    }
}
