//! Frame pacing for the WebGL renderer (in the page or in its worker): adapts the particle
//! count to the frame rate the machine sustains. The particles are the per-frame work that
//! scales with traffic; a GPU that cannot draw them all at a steady pace (SwiftShader on a
//! loaded CPU) gets fewer — cut by the ratio of `SLOW_FRAME_MS` to the frame period
//! (0.25–0.7×) every three slow frames, down to `MIN_PARTICLES` — and gets them back, 20% more
//! per ten quick frames. Particles are uploaded shuffled, so any count is a fair sample of
//! every edge's flow. Also when a renderer publishes its frame figures ([`Cadence`]).

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

/// When a renderer publishes its frame figures (frame count, frame CPU): every `every` frames
/// drawn, or once 500 ms have passed if fewer were, so a renderer drawing slowly is reported
/// as it goes rather than a batch late. Used by the worker (its stats message) and the page
/// renderer (the canvas's `data-gl-frames`, `data-frame-stats`).
pub struct Cadence {
    every: u32,
    since: u32,
    at: f64,
}

impl Cadence {
    const EVERY_MS: f64 = 500.0;

    pub const fn new(every: u32) -> Self {
        Cadence {
            every,
            since: 0,
            at: 0.0,
        }
    }

    /// A frame was drawn at `now` (ms); whether to publish now (`force`: publish anyway).
    pub fn drawn(&mut self, now: f64, force: bool) -> bool {
        self.since += 1;
        let due = force || self.since >= self.every || now - self.at >= Self::EVERY_MS;
        if due {
            self.since = 0;
            self.at = now;
        }
        due
    }

    /// No frame was drawn at `now` (nothing to draw, or the renderer paused); whether to
    /// publish now: yes if frames drawn since the last publication were not published. A
    /// renderer that stops drawing must not leave its last frames unreported until it next
    /// draws — they would then be counted as drawn at that later time.
    pub fn idle(&mut self, now: f64) -> bool {
        let due = self.since > 0;
        if due {
            self.since = 0;
            self.at = now;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker's pacer with 30,000 particles to draw, stepped frame by frame.
    struct Run {
        p: Pacer,
        cap: i32,
        t: f64,
    }

    impl Run {
        fn new() -> Self {
            Run {
                p: Pacer::new(WORKER_PAUSE_MS),
                cap: i32::MAX,
                t: 0.0,
            }
        }

        /// `n` frames `dt` ms apart; whether every one of them was drawn.
        fn frames(&mut self, n: usize, dt: f64) -> bool {
            (0..n).fold(true, |all, _| {
                self.t += dt;
                self.p.pace(self.t, 30_000, &mut self.cap) && all
            })
        }
    }

    #[test]
    fn slow_frames_draw_fewer_particles_and_quick_ones_more_again() {
        let mut r = Run::new();
        r.frames(40, 100.0);
        assert_eq!(r.cap, MIN_PARTICLES);
        r.frames(400, 16.0);
        assert_eq!(r.cap, i32::MAX);
    }

    /// A renderer that draws a frame every few seconds is the slowest case, not noise: its
    /// particles are cut to the fewest (a 1-second cut-off used to ignore these gaps and left
    /// all 22,343 particles on a map drawn at 0.3 fps).
    #[test]
    fn frames_seconds_apart_draw_the_fewest_particles() {
        let mut r = Run::new();
        r.frames(12, 3_000.0);
        assert_eq!(r.cap, MIN_PARTICLES);
    }

    /// A pause (hidden tab, silent page) is not a slow frame: quick frames around a long
    /// pause keep every particle.
    #[test]
    fn a_pause_is_not_a_slow_frame() {
        let mut r = Run::new();
        assert!(r.frames(20, 16.0));
        // A hidden tab: no frame for a minute.
        r.frames(1, 60_000.0);
        // The worker's page went silent for 5 s and it said so.
        r.p.resume();
        r.frames(1, 5_000.0);
        r.frames(20, 16.0);
        assert_eq!(r.cap, i32::MAX);
    }

    #[test]
    fn figures_go_out_every_n_frames_or_half_a_second() {
        let mut c = Cadence::new(8);
        // The first frame at 1 s: half a second since nothing was published.
        assert!(c.drawn(1000.0, false));
        // Quick frames: every 8th.
        let due: Vec<bool> = (1..=16)
            .map(|i| c.drawn(1000.0 + f64::from(i), false))
            .collect();
        assert_eq!(due.iter().filter(|d| **d).count(), 2);
        assert!(due[7] && due[15]);
        // A slow renderer: one frame every 3 s, each published.
        assert!(c.drawn(4000.0, false));
        assert!(c.drawn(7000.0, false));
        // Forced (the worker's first frame with nodes).
        assert!(c.drawn(7001.0, true));
        assert!(!c.drawn(7002.0, false));
    }

    #[test]
    fn frames_drawn_before_a_pause_are_published_when_it_starts() {
        let mut c = Cadence::new(8);
        assert!(c.drawn(1000.0, false));
        // Three quick frames (a change drawn), none published yet…
        assert!(!(1..=3).any(|i| c.drawn(1000.0 + f64::from(i), false)));
        // …then nothing to draw: the three go out at once, and once only.
        assert!(c.idle(1004.0));
        assert!(!c.idle(1020.0));
        assert!(!c.idle(5000.0));
        // A frame published as it is drawn leaves nothing for the next pause.
        assert!(
            c.drawn(5001.0, false),
            "half a second since the last publication"
        );
        assert!(!c.idle(5002.0));
    }
}
