//! The search page's duration-over-time plot, browser-free: each result a dot at (start time,
//! duration) in a fixed SVG viewBox, sized by span count, red when the trace has errors.

use crate::api::TraceSummary;

/// The viewBox (`0 0 W H`) and the plot area inside it (left margin for the duration labels,
/// bottom margin for the times).
pub const W: f64 = 1000.0;
pub const H: f64 = 170.0;
pub const LEFT: f64 = 60.0;
pub const BOTTOM: f64 = 20.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 12.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub trace_id: String,
    pub x: f64,
    pub y: f64,
    pub r: f64,
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plot {
    /// The time axis, Unix µs (the results' first and last start, padded).
    pub t0_us: i64,
    pub t1_us: i64,
    /// The duration axis' top (the longest result).
    pub max_us: i64,
    pub dots: Vec<Dot>,
}

impl Plot {
    pub fn new(traces: &[TraceSummary]) -> Plot {
        if traces.is_empty() {
            return Plot::default();
        }
        let lo = traces.iter().map(|t| t.start_us).min().unwrap_or(0);
        let hi = traces.iter().map(|t| t.start_us).max().unwrap_or(0);
        // 3% padding each side (≥ 0.5 s), so the first and last dots are not on the edges.
        let pad = ((hi - lo) / 33).max(500_000);
        let (t0, t1) = (lo - pad, hi + pad);
        let max_us = traces
            .iter()
            .map(|t| t.duration_us)
            .max()
            .unwrap_or(1)
            .max(1);
        let dots = traces
            .iter()
            .map(|t| Dot {
                trace_id: t.trace_id.clone(),
                x: LEFT + (t.start_us - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - RIGHT),
                y: H - BOTTOM - t.duration_us.max(0) as f64 / max_us as f64 * (H - BOTTOM - TOP),
                r: (2.0 + (t.span_count as f64).sqrt()).clamp(3.0, 12.0),
                error: t.error_count > 0,
            })
            .collect();
        Plot {
            t0_us: t0,
            t1_us: t1,
            max_us,
            dots,
        }
    }

    /// The time (Unix µs) at viewBox x (clamped to the plot area).
    pub fn time_at(&self, x: f64) -> i64 {
        let f = ((x - LEFT) / (W - LEFT - RIGHT)).clamp(0.0, 1.0);
        self.t0_us + (f * (self.t1_us - self.t0_us) as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, start: i64, dur: i64, spans: u64, errors: u64) -> TraceSummary {
        TraceSummary {
            trace_id: id.into(),
            start_us: start,
            duration_us: dur,
            span_count: spans,
            error_count: errors,
            ..Default::default()
        }
    }

    #[test]
    fn dots_are_placed_by_time_and_duration_sized_by_spans() {
        let s = 1_000_000;
        let p = Plot::new(&[
            t("a", 100 * s, 40_000, 5, 0),
            t("b", 110 * s, 160_000, 8, 1),
            t("c", 130 * s, 20_000, 400, 0),
        ]);
        let (a, b, c) = (&p.dots[0], &p.dots[1], &p.dots[2]);
        assert!(a.x < b.x && b.x < c.x);
        assert!(a.x > LEFT && c.x < W, "padded");
        // The longest is at the top of the plot area, shorter ones lower (SVG y grows down).
        assert!((b.y - TOP).abs() < 1e-9);
        assert!(a.y > b.y && c.y > a.y);
        assert!(b.error && !a.error);
        assert!(b.r > a.r);
        assert_eq!(c.r, 12.0, "capped");
        // The time axis maps back.
        let at = p.time_at(b.x);
        assert!((at - 110 * s).abs() < 1_000, "{at}");
        assert_eq!(p.time_at(-5.0), p.t0_us);
        assert_eq!(p.time_at(W + 5.0), p.t1_us);
    }

    #[test]
    fn one_result_or_none_is_fine() {
        let p = Plot::new(&[t("a", 5, 0, 1, 0)]);
        assert!(p.t1_us > p.t0_us);
        assert!(p.dots[0].y.is_finite() && p.dots[0].x.is_finite());
        assert!(Plot::new(&[]).dots.is_empty());
    }
}
