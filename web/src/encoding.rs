//! Visual encodings: request rate → particle rate (log scale, adaptive to the busiest edge),
//! error share → share of red particles, traffic → node size, health → colour.

/// Particles per second on the busiest edge, and the floor for any edge with traffic.
pub const MAX_PPS: f32 = 24.0;
pub const MIN_PPS: f32 = 0.6;
/// World units per second a particle travels.
pub const PARTICLE_SPEED: f32 = 220.0;

/// Log-scale mapping of an edge's request rate to particles emitted per second.
pub fn particles_per_second(rps: f64, max_rps: f64) -> f32 {
    if rps <= 0.0 || max_rps <= 0.0 {
        return 0.0;
    }
    let f = ((1.0 + rps).ln() / (1.0 + max_rps.max(rps)).ln()) as f32;
    MIN_PPS + (MAX_PPS - MIN_PPS) * f
}

/// How many particles are in flight at once on an edge of `length` world units.
pub fn particles_in_flight(pps: f32, length: f32) -> u32 {
    if pps <= 0.0 {
        return 0;
    }
    (pps * (length / PARTICLE_SPEED).max(0.25)).ceil() as u32
}

/// Whether particle `i` of an edge is red. A golden-ratio low-discrepancy sequence makes the
/// red share of any edge match its error share to within a particle or two, spread evenly.
pub fn is_error_particle(i: u32, error_rate: f64) -> bool {
    let v = (i as f64 * 0.618_033_988_749_895).fract();
    v < error_rate
}

/// Node radius in world units: grows with the log of its traffic.
pub fn node_radius(rps: f64, max_rps: f64) -> f32 {
    if max_rps <= 0.0 {
        return 16.0;
    }
    let f = ((1.0 + rps.max(0.0)).ln() / (1.0 + max_rps.max(rps)).ln()) as f32;
    14.0 + 20.0 * f
}

/// Legend rows: request rates at powers of ten up to the busiest edge, and the busiest itself,
/// with their particle rates.
pub fn legend(max_rps: f64) -> Vec<(f64, f32)> {
    if max_rps <= 0.0 {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let mut r = 0.01;
    while r < max_rps * 0.75 {
        if r >= max_rps / 1000.0 {
            rows.push((r, particles_per_second(r, max_rps)));
        }
        r *= 10.0;
    }
    rows.push((max_rps, particles_per_second(max_rps, max_rps)));
    rows
}

/// RGB (0..1) of a health state.
pub fn health_rgb(health: &str) -> [f32; 3] {
    match health {
        "danger" => [0.93, 0.27, 0.25],
        "warning" => [0.98, 0.67, 0.18],
        // Diff mode: an edge new in the current window.
        "added" => [0.35, 0.85, 0.45],
        // Diff mode: an edge or node only in the previous window.
        "vanished" => [0.52, 0.55, 0.6],
        _ => [0.36, 0.72, 0.86],
    }
}

pub const PARTICLE_OK: [f32; 3] = [0.72, 0.88, 1.0];
pub const PARTICLE_ERROR: [f32; 3] = [1.0, 0.25, 0.22];

pub fn css(rgb: [f32; 3]) -> String {
    format!(
        "rgb({},{},{})",
        (rgb[0] * 255.0) as u8,
        (rgb[1] * 255.0) as u8,
        (rgb[2] * 255.0) as u8
    )
}

/// Human rate, e.g. `12.3/s`, `0.05/s`.
pub fn fmt_rate(rps: f64) -> String {
    if rps >= 100.0 {
        format!("{rps:.0}/s")
    } else if rps >= 1.0 {
        format!("{rps:.1}/s")
    } else {
        format!("{rps:.2}/s")
    }
}

/// Human duration from microseconds.
pub fn fmt_us(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// What an on-call engineer must know when the map is not the whole window: part of it is not
/// rolled up yet (the hourly backfill has not reached it) and was left out of the graph, so
/// counts there are missing, not zero. `None` when the whole window is in the graph.
pub fn coverage_note(
    q: &crate::api::DataQuality,
    fmt_time: impl Fn(i64) -> String,
) -> Option<String> {
    if q.rollup_coverage >= 1.0 {
        return None;
    }
    // Never rounds up to "100%" while something is left out.
    let pct = (q.rollup_coverage * 100.0).clamp(0.0, 99.9);
    let left_out = match (q.uncovered.first(), q.uncovered.last()) {
        (Some(first), Some(last)) => format!(
            " (left out: {} – {} UTC)",
            fmt_time(first.start_ms),
            fmt_time(last.end_ms)
        ),
        _ => String::new(),
    };
    Some(format!(
        "This map covers {pct:.1}% of the window's spans{left_out}: older data is still being \
         rolled up — counts there are missing, not zero. Narrow the window or retry later."
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_partly_rolled_up_window_says_what_it_left_out() {
        use crate::api::{DataQuality, TimeRange};
        let fmt = |ms: i64| format!("t{}", ms / 1000);
        assert_eq!(coverage_note(&DataQuality::default(), fmt), None);
        let q = DataQuality {
            rollup_coverage: 0.25,
            uncovered: vec![
                TimeRange {
                    start_ms: 1_000,
                    end_ms: 2_000,
                },
                TimeRange {
                    start_ms: 5_000,
                    end_ms: 9_000,
                },
            ],
            ..DataQuality::default()
        };
        let note = coverage_note(&q, fmt).unwrap();
        assert!(
            note.starts_with("This map covers 25.0% of the window's spans"),
            "{note}"
        );
        // From the first range's start to the last one's end.
        assert!(note.contains("(left out: t1 – t9 UTC)"), "{note}");
        let none = DataQuality {
            rollup_coverage: 0.0,
            ..DataQuality::default()
        };
        assert!(coverage_note(&none, fmt).unwrap().contains("covers 0.0%"));
        let almost = DataQuality {
            rollup_coverage: 0.9999,
            ..DataQuality::default()
        };
        assert!(
            coverage_note(&almost, fmt)
                .unwrap()
                .contains("covers 99.9%")
        );
    }

    use super::*;

    #[test]
    fn particle_rate_is_log_scaled_and_capped_by_the_busiest_edge() {
        assert_eq!(particles_per_second(0.0, 100.0), 0.0);
        assert!((particles_per_second(100.0, 100.0) - MAX_PPS).abs() < 1e-4);
        let (a, b, c) = (
            particles_per_second(10.0, 10_000.0),
            particles_per_second(100.0, 10_000.0),
            particles_per_second(1000.0, 10_000.0),
        );
        assert!(a < b && b < c);
        // Log scale: equal ratios give (nearly) equal steps, unlike a linear scale.
        assert!(((c - b) - (b - a)).abs() < 0.5, "{a} {b} {c}");
        assert!(particles_per_second(0.001, 10_000.0) >= MIN_PPS);
    }

    #[test]
    fn red_share_matches_error_share() {
        for rate in [0.0, 0.01, 0.1, 0.37, 0.5, 1.0] {
            let n = 1000;
            let red = (0..n).filter(|&i| is_error_particle(i, rate)).count() as f64;
            assert!((red - rate * n as f64).abs() <= 3.0, "rate {rate}: {red}");
        }
        // Small edges too: of 10 particles with a 30% error share, 3 are red.
        let red = (0..10).filter(|&i| is_error_particle(i, 0.3)).count();
        assert!((2..=4).contains(&red), "{red}");
    }

    #[test]
    fn busier_nodes_are_bigger_and_legend_ends_at_the_busiest_edge() {
        assert!(node_radius(100.0, 100.0) > node_radius(1.0, 100.0));
        let l = legend(250.0);
        assert_eq!(l.last().unwrap().0, 250.0);
        assert!(l.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
        assert!(legend(0.0).is_empty());
    }

    #[test]
    fn health_colours_differ() {
        assert_ne!(health_rgb("danger"), health_rgb("normal"));
        assert_ne!(health_rgb("warning"), health_rgb("normal"));
        assert_eq!(fmt_us(1500), "1.5ms");
        assert_eq!(fmt_rate(2.0), "2.0/s");
    }
}
