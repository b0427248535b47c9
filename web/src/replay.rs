//! Replay of a past range, minute by minute: which one-minute window is shown at a position,
//! stepping, and the pace at a playback speed. Positions are Unix ms of a frame's start.

pub const STEP_MS: i64 = 60_000;
/// Wall-clock time one frame stays on screen at 1× speed.
pub const FRAME_MS_AT_1X: f64 = 2_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// First frame (minute-aligned).
    pub first: i64,
    /// Last frame (minute-aligned, ≥ `first`).
    pub last: i64,
}

impl Replay {
    /// Frames covering `[start_ms, end_ms)`, aligned to whole minutes like the API's windows.
    pub fn new(start_ms: i64, end_ms: i64) -> Replay {
        let first = start_ms.div_euclid(STEP_MS) * STEP_MS;
        let last = ((end_ms - 1).div_euclid(STEP_MS) * STEP_MS).max(first);
        Replay { first, last }
    }

    pub fn frames(&self) -> i64 {
        (self.last - self.first) / STEP_MS + 1
    }

    /// The frame containing `pos`, kept inside the range.
    pub fn clamp(&self, pos: i64) -> i64 {
        (pos.div_euclid(STEP_MS) * STEP_MS).clamp(self.first, self.last)
    }

    /// The frame after `pos`, or `None` at the end (playback stops there).
    pub fn next(&self, pos: i64) -> Option<i64> {
        let p = self.clamp(pos);
        (p < self.last).then_some(p + STEP_MS)
    }

    /// The API window `[start, end)` (ms) shown at `pos`.
    pub fn window(&self, pos: i64) -> (i64, i64) {
        let p = self.clamp(pos);
        (p, p + STEP_MS)
    }

    /// Index of `pos`'s frame (0-based), for "frame k of n".
    pub fn index(&self, pos: i64) -> i64 {
        (self.clamp(pos) - self.first) / STEP_MS
    }
}

/// Milliseconds between frames at `speed` (×1, ×2, …; anything ≤ 0 counts as ×1).
pub fn interval_ms(speed: f64) -> u32 {
    let s = if speed > 0.0 { speed } else { 1.0 };
    (FRAME_MS_AT_1X / s).clamp(100.0, 60_000.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000 - 1_700_000_000_000 % STEP_MS;

    #[test]
    fn frames_cover_the_range_in_whole_minutes() {
        let r = Replay::new(T + 10_000, T + 3 * STEP_MS + 5);
        assert_eq!(r.first, T);
        assert_eq!(r.last, T + 3 * STEP_MS);
        assert_eq!(r.frames(), 4);
        // An end exactly on a minute does not add an empty frame after it.
        assert_eq!(Replay::new(T, T + 2 * STEP_MS).frames(), 2);
        // A range shorter than a minute is one frame.
        assert_eq!(Replay::new(T + 1, T + 2).frames(), 1);
    }

    #[test]
    fn stepping_walks_every_frame_once_and_stops_at_the_end() {
        let r = Replay::new(T, T + 5 * STEP_MS);
        let mut pos = r.first;
        let mut seen = vec![pos];
        while let Some(p) = r.next(pos) {
            assert_eq!(p - pos, STEP_MS);
            pos = p;
            seen.push(p);
        }
        assert_eq!(seen.len() as i64, r.frames());
        assert_eq!(pos, r.last);
        assert_eq!(r.index(pos), r.frames() - 1);
    }

    #[test]
    fn positions_snap_into_the_range_and_windows_are_one_minute() {
        let r = Replay::new(T, T + 5 * STEP_MS);
        assert_eq!(r.clamp(T - 10 * STEP_MS), r.first);
        assert_eq!(r.clamp(T + 99 * STEP_MS), r.last);
        assert_eq!(r.clamp(T + STEP_MS + 59_999), T + STEP_MS);
        assert_eq!(r.window(T + STEP_MS + 1), (T + STEP_MS, T + 2 * STEP_MS));
        // A position from an edited URL outside the range still steps from inside it.
        assert_eq!(r.next(T - STEP_MS), Some(T + STEP_MS));
    }

    #[test]
    fn faster_speeds_step_more_often_within_bounds() {
        assert_eq!(interval_ms(1.0), 2_000);
        assert_eq!(interval_ms(4.0), 500);
        assert!(interval_ms(8.0) < interval_ms(2.0));
        assert_eq!(interval_ms(0.0), interval_ms(1.0));
        assert_eq!(interval_ms(1_000.0), 100);
    }
}
