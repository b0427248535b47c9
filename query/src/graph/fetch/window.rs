//! The time window a graph is read for, and the windows it is compared with.

use super::markers::HOUR_NS;

/// The longest "what's wrong" baseline: a day. A longer window is compared with the day
/// before it — error rates and quantiles do not depend on the length, and a month-long graph
/// must not read a second month of rollups (and its markers) to rank what got worse.
pub const MAX_BASELINE_NS: i64 = 24 * HOUR_NS;

/// A time window in nanoseconds, minute-aligned: `[lo, hi)`; `now` caps rates and settles
/// spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub lo: i64,
    pub hi: i64,
    pub now: i64,
}

/// The window's former name, kept so modules not yet moved to [`Window`] keep building.
pub type Span = Window;

impl Window {
    /// Seconds of the window that have happened (for rates).
    pub fn seconds(&self) -> f64 {
        ((self.hi.min(self.now) - self.lo) as f64 / 1e9).max(1.0)
    }
    pub fn live(&self) -> bool {
        self.hi >= self.now
    }
    /// What "what's wrong" compares this window with: the previous window of the same length
    /// (rounded up to whole hours, at most [`MAX_BASELINE_NS`]), moved back to end on the last
    /// whole hour at or before this window's start, so it is read from hourly rollups instead
    /// of ~60 minute rows per hour (a 1 h window 10:23–11:23 compares with 09:00–10:00; a
    /// 15 min window with the last whole hour before it; a 30-day window with the day before
    /// it). Error rates and quantiles do not depend on the length; rates are per second of
    /// the baseline.
    pub fn baseline(&self) -> Window {
        let len = (self.hi - self.lo).max(1);
        let len = ((len + HOUR_NS - 1) / HOUR_NS * HOUR_NS).min(MAX_BASELINE_NS);
        let hi = self.lo.div_euclid(HOUR_NS) * HOUR_NS;
        Window {
            lo: hi - len,
            hi,
            now: self.now,
        }
    }

    /// The window of equal length just before this one.
    pub fn previous(&self) -> Window {
        let len = self.hi - self.lo;
        Window {
            lo: self.lo - len,
            hi: self.lo,
            now: self.now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = super::super::markers::MINUTE_NS;

    #[test]
    fn baseline_is_the_previous_window_in_whole_hours_ending_before_it() {
        let h = 100 * HOUR_NS;
        // 1 h window 10:23–11:23 → 09:00–10:00.
        let w = Window {
            lo: h + 23 * M,
            hi: h + 83 * M,
            now: h + 83 * M,
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - HOUR_NS, h));
        // 15 min → the last whole hour before it; 24 h → the 24 whole hours before.
        let w = Window {
            lo: h + 50 * M,
            hi: h + 65 * M,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - HOUR_NS, h));
        let w = Window {
            lo: h + M,
            hi: h + 24 * HOUR_NS + M,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - 24 * HOUR_NS, h));
        // 30 days → the day before it, never a second month.
        let w = Window {
            lo: h + M,
            hi: h + 30 * 24 * HOUR_NS + M,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - 24 * HOUR_NS, h));
        // A window starting on the hour ends its baseline there.
        let w = Window {
            lo: h,
            hi: h + HOUR_NS,
            ..w
        };
        assert_eq!((w.baseline().lo, w.baseline().hi), (h - HOUR_NS, h));
    }
}
