//! Node labels by level of detail: candidates in priority order (the selected node, then
//! unhealthy ones — danger before warning — then the busiest), each placed only where it
//! overlaps no label already placed, up to a budget that scales with the screen's area. At
//! fit-to-screen a 2,000-service map shows the names that matter; zooming in makes room for
//! the rest. The boxes placed are the boxes drawn, so "no two labels overlap" holds by
//! construction and the browser tests measure it from the same boxes.

use crate::api::{Graph, Health};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// Node indices in label priority order.
pub fn priority(g: &Graph, selected: Option<&str>) -> Vec<usize> {
    let rank = |h: Health| match h {
        Health::Danger => 0,
        Health::Warning => 1,
        Health::Normal => 2,
    };
    let mut order: Vec<usize> = (0..g.nodes.len()).collect();
    order.sort_by(|&a, &b| {
        let (na, nb) = (&g.nodes[a], &g.nodes[b]);
        (selected != Some(na.id.as_str()))
            .cmp(&(selected != Some(nb.id.as_str())))
            .then(rank(na.health).cmp(&rank(nb.health)))
            .then(nb.metrics.rps.total_cmp(&na.metrics.rps))
            .then(na.name.cmp(&nb.name))
    });
    order
}

/// How many labels a `w`×`h` (device pixels) screen gets at most: one per ~120×40 CSS px.
pub fn budget(w: f32, h: f32, dpr: f32) -> usize {
    ((w * h) / (120.0 * 40.0 * dpr * dpr)).clamp(20.0, 600.0) as usize
}

/// Greedy placement: `candidates` in priority order as (node index, box); returns those that
/// fit without overlapping an earlier one, at most `max`. A uniform grid of buckets keeps it
/// near-linear for thousands of candidates.
pub fn place(
    candidates: impl IntoIterator<Item = (usize, Rect)>,
    max: usize,
) -> Vec<(usize, Rect)> {
    const CELL: f32 = 64.0;
    let mut grid: std::collections::HashMap<(i32, i32), Vec<usize>> = Default::default();
    let mut placed: Vec<(usize, Rect)> = Vec::new();
    let cells = |r: &Rect| {
        let (x0, x1) = (
            (r.x / CELL).floor() as i32,
            ((r.x + r.w) / CELL).floor() as i32,
        );
        let (y0, y1) = (
            (r.y / CELL).floor() as i32,
            ((r.y + r.h) / CELL).floor() as i32,
        );
        (x0..=x1).flat_map(move |x| (y0..=y1).map(move |y| (x, y)))
    };
    for (i, r) in candidates {
        if placed.len() >= max {
            break;
        }
        let clash = cells(&r).any(|c| {
            grid.get(&c)
                .is_some_and(|v| v.iter().any(|&k| placed[k].1.overlaps(&r)))
        });
        if clash {
            continue;
        }
        for c in cells(&r) {
            grid.entry(c).or_default().push(placed.len());
        }
        placed.push((i, r));
    }
    placed
}

/// Pairs of boxes that overlap (what the browser tests measure on the drawn labels).
pub fn overlapping_pairs(rects: &[Rect]) -> usize {
    let mut n = 0;
    for (i, a) in rects.iter().enumerate() {
        n += rects[i + 1..].iter().filter(|b| a.overlaps(b)).count();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(x: f32, y: f32) -> Rect {
        Rect {
            x,
            y,
            w: 80.0,
            h: 14.0,
        }
    }

    #[test]
    fn placed_labels_never_overlap_and_priority_wins() {
        // A dense grid of 2,000 labels 15 px apart: most cannot be shown.
        let cands: Vec<(usize, Rect)> = (0..2000)
            .map(|i| (i, r((i % 50) as f32 * 18.0, (i / 50) as f32 * 15.0)))
            .collect();
        let placed = place(cands.clone(), 10_000);
        let rects: Vec<Rect> = placed.iter().map(|p| p.1).collect();
        assert_eq!(overlapping_pairs(&rects), 0);
        assert!(placed.len() > 100, "{}", placed.len());
        assert_eq!(placed[0].0, 0, "the first candidate always gets its label");
        // Every rejected candidate really clashed with a placed one.
        let shown: std::collections::HashSet<usize> = placed.iter().map(|p| p.0).collect();
        for (i, c) in &cands {
            if !shown.contains(i) {
                assert!(
                    rects.iter().any(|p| p.overlaps(c)),
                    "{i} left out for nothing"
                );
            }
        }
        assert_eq!(place(cands, 7).len(), 7);
    }

    #[test]
    fn overlap_counting() {
        assert_eq!(
            overlapping_pairs(&[r(0.0, 0.0), r(79.0, 0.0), r(160.0, 0.0)]),
            1
        );
        assert_eq!(
            overlapping_pairs(&[r(0.0, 0.0), r(80.0, 0.0), r(0.0, 14.0)]),
            0
        );
    }

    #[test]
    fn unhealthy_and_busy_nodes_come_first() {
        let mut g = crate::synth::mesh(40, 80, 4, 2);
        g.nodes[7].health = Health::Warning;
        g.nodes[9].health = Health::Danger;
        for n in &mut g.nodes[10..] {
            n.health = Health::Normal;
        }
        for n in &mut g.nodes[..7] {
            n.health = Health::Normal;
        }
        g.nodes[8].health = Health::Normal;
        let order = priority(&g, Some(g.nodes[3].id.as_str()));
        assert_eq!(&order[..3], &[3, 9, 7]);
        let rest: Vec<f64> = order[3..].iter().map(|&i| g.nodes[i].metrics.rps).collect();
        assert!(rest.windows(2).all(|w| w[0] >= w[1]));
    }
}
