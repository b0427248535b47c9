//! When the page clears its User Timing entries ([`super::perf`] records them; the browser keeps
//! them until a page clears them): a counter apart from the browser's API so it is tested
//! natively.

/// Entries the page records before it clears its timeline (a few MB at most; a bench's or a
/// test's whole run records a few thousand).
pub const TIMELINE_CAP: u32 = 20_000;

/// Counts the entries the page records; says when to clear them.
#[derive(Debug, Default)]
pub struct Timeline {
    recorded: u32,
}

impl Timeline {
    pub const fn new() -> Self {
        Timeline { recorded: 0 }
    }

    /// One more entry recorded; true when the timeline is full and must be cleared now (the
    /// count starts again).
    pub fn record(&mut self) -> bool {
        self.recorded += 1;
        if self.recorded >= TIMELINE_CAP {
            self.recorded = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_is_cleared_after_every_cap_entries_and_only_then() {
        let mut t = Timeline::default();
        let clears = |t: &mut Timeline, n: u32| (0..n).filter(|_| t.record()).count();
        assert_eq!(clears(&mut t, TIMELINE_CAP - 1), 0);
        assert!(t.record(), "the cap-th entry clears");
        // A week of a live map at ~100 entries per 5 s update (12M entries): ~600 clears, never
        // more than the cap held at once.
        let week = 7 * 24 * 3600 / 5 * 100;
        assert_eq!(clears(&mut t, week), (week / TIMELINE_CAP) as usize);
    }
}
