//! Edge routing: quadratic Bézier curves between two node centres, bent so that an edge between
//! regions never passes through the node in the middle of the global ring (`INTERNET`) — drawn
//! straight, an edge between opposite regions would read as traffic from the internet. The
//! shaders evaluate the same curve (control point = midpoint + normal × bend × length, normal
//! = (−dy, dx)/length), so the geometry tested here is the geometry drawn.

use crate::layout::Pos;

/// How much every inter-region edge bends at least (a gentle arc, as Vizceral draws them).
pub const BASE_BEND: f32 = 0.12;
/// The largest bend tried; a clearance that needs more is not reachable with one curve.
const MAX_BEND: f32 = 1.5;
/// Points sampled along a curve for distance checks (the shader draws 24 segments).
pub const SAMPLES: usize = 24;

/// The point at `t` (0..1) of the curve from `a` to `b` with `bend`.
pub fn curve_point(a: Pos, b: Pos, bend: f32, t: f32) -> Pos {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let c = Pos {
        x: (a.x + b.x) / 2.0 - dy * bend,
        y: (a.y + b.y) / 2.0 + dx * bend,
    };
    let u = 1.0 - t;
    Pos {
        x: u * u * a.x + 2.0 * u * t * c.x + t * t * b.x,
        y: u * u * a.y + 2.0 * u * t * c.y + t * t * b.y,
    }
}

/// The smallest distance from `p` to the curve (sampled; exact enough for hit tests and
/// clearance checks at the drawn resolution).
pub fn curve_distance(p: Pos, a: Pos, b: Pos, bend: f32) -> f32 {
    let mut best = f32::MAX;
    let mut prev = a;
    for k in 1..=SAMPLES {
        let q = curve_point(a, b, bend, k as f32 / SAMPLES as f32);
        best = best.min(segment_distance(p, prev, q));
        prev = q;
    }
    best
}

pub fn segment_distance(p: Pos, a: Pos, b: Pos) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let l2 = dx * dx + dy * dy;
    let t = if l2 == 0.0 {
        0.0
    } else {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / l2).clamp(0.0, 1.0)
    };
    ((a.x + t * dx - p.x).powi(2) + (a.y + t * dy - p.y).powi(2)).sqrt()
}

/// The bend for an edge `a`→`b` that keeps it at least `clearance` away from `obstacle`:
/// [`BASE_BEND`] at least, bowing away from the obstacle's side (an obstacle right on the line
/// gets the positive side, so `a`→`b` and `b`→`a` bow apart and stay distinguishable).
pub fn bend_around(a: Pos, b: Pos, obstacle: Pos, clearance: f32) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let cross = dx * (obstacle.y - a.y) - dy * (obstacle.x - a.x);
    let len = (dx * dx + dy * dy).sqrt().max(1e-3);
    // Positive bend moves the control point to the normal's side, where `cross > 0` puts the
    // obstacle.
    let side = if cross / len > 1e-3 { -1.0 } else { 1.0 };
    let mut bend = BASE_BEND;
    while bend < MAX_BEND && curve_distance(obstacle, a, b, side * bend) < clearance {
        bend += 0.02;
    }
    side * bend
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize, radius: f32) -> Vec<Pos> {
        (0..n)
            .map(|k| {
                let a = k as f32 / n as f32 * std::f32::consts::TAU - std::f32::consts::FRAC_PI_2;
                Pos {
                    x: radius * a.cos(),
                    y: radius * a.sin(),
                }
            })
            .collect()
    }

    #[test]
    fn edges_between_opposite_regions_go_around_the_middle() {
        let o = Pos { x: 0.0, y: 0.0 };
        for n in [2, 3, 4, 6, 7] {
            let pts = ring(n, 320.0);
            for (i, &a) in pts.iter().enumerate() {
                for (j, &b) in pts.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let bend = bend_around(a, b, o, 90.0);
                    let d = curve_distance(o, a, b, bend);
                    assert!(d >= 90.0, "{n} regions, {i}→{j}: {d} from the middle");
                    // Straight, the opposite pairs would have gone right through it.
                    if n % 2 == 0 && j == (i + n / 2) % n {
                        assert!(segment_distance(o, a, b) < 1.0);
                    }
                    // Both ends stay where the nodes are.
                    assert_eq!(curve_point(a, b, bend, 0.0), a);
                    let end = curve_point(a, b, bend, 1.0);
                    assert!((end.x - b.x).abs() < 0.01 && (end.y - b.y).abs() < 0.01);
                }
            }
        }
    }

    #[test]
    fn the_two_directions_of_a_pair_bow_apart() {
        let (a, b, o) = (
            Pos { x: 0.0, y: -320.0 },
            Pos { x: 0.0, y: 320.0 },
            Pos { x: 0.0, y: 0.0 },
        );
        let ab = curve_point(a, b, bend_around(a, b, o, 80.0), 0.5);
        let ba = curve_point(b, a, bend_around(b, a, o, 80.0), 0.5);
        assert!(ab.x * ba.x < 0.0, "{ab:?} {ba:?}");
    }

    #[test]
    fn an_edge_clear_of_the_middle_keeps_the_gentle_base_arc() {
        let (a, b) = (
            Pos {
                x: 300.0,
                y: -100.0,
            },
            Pos { x: 300.0, y: 100.0 },
        );
        let bend = bend_around(a, b, Pos { x: 0.0, y: 0.0 }, 80.0);
        assert!((bend.abs() - BASE_BEND).abs() < 1e-6);
        // ... and bows outwards, away from the middle.
        assert!(curve_point(a, b, bend, 0.5).x > 300.0);
    }
}
