//! Frame pacing for the WebGL renderer (in the page or in its worker): adapts the particle
//! count to the frame rate the machine sustains. The particles are the per-frame work that
//! scales with traffic; a GPU that cannot draw them all at a steady pace (SwiftShader on a
//! loaded CPU) gets fewer — cut by the ratio of `SLOW_FRAME_MS` to the frame period
//! (0.25–0.7×) every three slow frames, down to `MIN_PARTICLES` — and gets them back, 20% more
//! per ten quick frames. Particles are uploaded shuffled, so any count is a fair sample of
//! every edge's flow.

/// Frames further apart than this on average (ms) draw fewer particles; closer than
/// `FAST_FRAME_MS`, more again (up to all of them).
const SLOW_FRAME_MS: f64 = 40.0;
const FAST_FRAME_MS: f64 = 24.0;
/// The fewest particles `pace` goes down to.
pub const MIN_PARTICLES: i32 = 1_000;
/// In the worker, a gap between frames longer than this (ms) is a pause, not a frame's cost
/// (the worker also says when it resumes after its page went silent: [`Pacer::resume`]).
/// Anything shorter is a slow frame: the worker's thread does nothing but draw, so a worker
/// that draws a frame every few seconds (seen in CI: 0.3 fps on software WebGL under load,
/// with all 22k particles while gaps over 1 s were ignored) must get fewer particles.
pub const WORKER_PAUSE_MS: f64 = 10_000.0;
/// On the page's thread the gaps also hold the page's own long tasks (applying a graph, a
/// hidden tab's stopped frames), which particles do not cause: gaps over 1 s are not counted.
pub const PAGE_PAUSE_MS: f64 = 1_000.0;

pub struct Pacer {
    /// Gaps longer than this (ms) are pauses (`WORKER_PAUSE_MS`, `PAGE_PAUSE_MS`).
    pause_ms: f64,
    /// When the last frame started and the mean time between frames (ms).
    last_frame_at: f64,
    period_ms: f64,
    pace_frames: u32,
    drew_last: bool,
    next_draw_at: f64,
}

impl Pacer {
    pub fn new(pause_ms: f64) -> Self {
        Pacer {
            pause_ms,
            last_frame_at: 0.0,
            period_ms: 16.7,
            pace_frames: 0,
            drew_last: false,
            next_draw_at: 0.0,
        }
    }

    /// At a frame starting at `now` (ms): adjusts `cap` (particles drawn, of `total`) and
    /// says whether to draw this frame.
    pub fn pace(&mut self, now: f64, total: i32, cap: &mut i32) -> bool {
        let dt = now - self.last_frame_at;
        self.last_frame_at = now;
        // Only the time after a drawn frame is its cost; a pause says nothing about the GPU.
        if self.drew_last && (0.0..self.pause_ms).contains(&dt) {
            self.period_ms = 0.8 * self.period_ms + 0.2 * dt;
            self.pace_frames = self.pace_frames.saturating_add(1);
        }
        let drawn = (*cap).min(total);
        // Three frames after a change, so the mean reflects it.
        if self.pace_frames >= 3 {
            if self.period_ms > SLOW_FRAME_MS && drawn > MIN_PARTICLES {
                // The slower the frames, the bigger the cut (at most to a quarter at once).
                let k = (SLOW_FRAME_MS / self.period_ms).clamp(0.25, 0.7);
                *cap = ((f64::from(drawn) * k) as i32).max(MIN_PARTICLES);
                self.pace_frames = 0;
            } else if self.period_ms < FAST_FRAME_MS && drawn < total && self.pace_frames >= 10 {
                let more = (f64::from(drawn) * 1.2) as i32 + 100;
                *cap = if more >= total { i32::MAX } else { more };
                self.pace_frames = 0;
            }
        }
        // Still slow with the fewest particles: every drawn frame keeps the GPU busy for as
        // long as it takes, so leave it at least as long again between frames (at most half
        // of the time goes to drawing).
        let starved = self.period_ms > SLOW_FRAME_MS && drawn <= MIN_PARTICLES;
        let draw = !starved || now >= self.next_draw_at;
        if draw && starved {
            self.next_draw_at = now + self.period_ms.min(1000.0);
        }
        self.drew_last = draw;
        draw
    }

    /// The frame loop starts again after a pause: the gap before the next frame is not its
    /// cost.
    pub fn resume(&mut self) {
        self.drew_last = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_frames_draw_fewer_particles_and_quick_ones_more_again() {
        let mut p = Pacer::new(WORKER_PAUSE_MS);
        let mut cap = i32::MAX;
        let mut t = 0.0;
        for _ in 0..40 {
            t += 100.0;
            p.pace(t, 30_000, &mut cap);
        }
        assert_eq!(cap, MIN_PARTICLES);
        for _ in 0..400 {
            t += 16.0;
            p.pace(t, 30_000, &mut cap);
        }
        assert_eq!(cap, i32::MAX);
    }

    /// A renderer that draws a frame every few seconds is the slowest case, not noise: its
    /// particles are cut to the fewest (a 1-second cut-off used to ignore these gaps and left
    /// all 22,343 particles on a map drawn at 0.3 fps).
    #[test]
    fn frames_seconds_apart_draw_the_fewest_particles() {
        let mut p = Pacer::new(WORKER_PAUSE_MS);
        let mut cap = i32::MAX;
        let mut t = 0.0;
        for _ in 0..12 {
            t += 3_000.0;
            p.pace(t, 30_000, &mut cap);
        }
        assert_eq!(cap, MIN_PARTICLES);
    }

    /// A pause (hidden tab, silent page) is not a slow frame: quick frames around a long
    /// pause keep every particle.
    #[test]
    fn a_pause_is_not_a_slow_frame() {
        let mut p = Pacer::new(WORKER_PAUSE_MS);
        let mut cap = i32::MAX;
        let mut t = 0.0;
        for _ in 0..20 {
            t += 16.0;
            assert!(p.pace(t, 30_000, &mut cap));
        }
        // A hidden tab: no frame for a minute.
        t += 60_000.0;
        p.pace(t, 30_000, &mut cap);
        // The worker's page went silent for 5 s and it said so.
        p.resume();
        t += 5_000.0;
        p.pace(t, 30_000, &mut cap);
        for _ in 0..20 {
            t += 16.0;
            p.pace(t, 30_000, &mut cap);
        }
        assert_eq!(cap, i32::MAX);
    }
}
