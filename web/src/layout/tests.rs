//! The layered and ring layouts' tests: placement, stability, wrapping to the screen's shape.

use super::*;

fn input<'a>(nodes: &[(&'a str, u32)], edges: &[(&'a str, &'a str)]) -> Input<'a> {
    Input {
        nodes: nodes.to_vec(),
        edges: edges.to_vec(),
    }
}

#[test]
fn columns_follow_rank_and_nodes_never_overlap() {
    let g = input(
        &[
            ("INTERNET", 0),
            ("web", 1),
            ("api", 2),
            ("db", 3),
            ("cache", 3),
        ],
        &[
            ("INTERNET", "web"),
            ("web", "api"),
            ("api", "db"),
            ("api", "cache"),
        ],
    );
    let mut l = Layout::new();
    let ch = l.update_layered(&g);
    assert_eq!(ch.added.len(), 5);
    assert_eq!(l.get("INTERNET").unwrap().x, 0.0);
    assert_eq!(l.get("web").unwrap().x, COLUMN);
    assert_eq!(l.get("db").unwrap().x, 3.0 * COLUMN);
    assert_ne!(l.get("db").unwrap().y, l.get("cache").unwrap().y);
}

#[test]
fn same_graph_same_layout_whatever_the_input_order() {
    let a = input(
        &[("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2)],
        &[("a", "b"), ("a", "c"), ("b", "e"), ("c", "d")],
    );
    let b = input(
        &[("e", 2), ("d", 2), ("c", 1), ("b", 1), ("a", 0)],
        &[("c", "d"), ("b", "e"), ("a", "c"), ("a", "b")],
    );
    let (mut l1, mut l2) = (Layout::new(), Layout::new());
    l1.update_layered(&a);
    l2.update_layered(&b);
    for id in ["a", "b", "c", "d", "e"] {
        assert_eq!(l1.get(id), l2.get(id), "{id}");
    }
}

#[test]
fn barycentre_sweep_uncrosses_edges() {
    // b→e and c→d would cross if the d/e column stayed alphabetical.
    let g = input(
        &[("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2)],
        &[("a", "b"), ("a", "c"), ("b", "e"), ("c", "d")],
    );
    let mut l = Layout::new();
    l.update_layered(&g);
    let y = |id| l.get(id).unwrap().y;
    assert_eq!(y("b") < y("c"), y("e") < y("d"));
}

#[test]
fn update_keeps_existing_nodes_and_places_new_ones_near_neighbours() {
    let g1 = input(
        &[("a", 0), ("b", 1), ("c", 1), ("x", 2)],
        &[("a", "b"), ("a", "c"), ("c", "x")],
    );
    let mut l = Layout::new();
    l.update_layered(&g1);
    let before: Vec<_> = ["a", "b", "c"].iter().map(|id| l.get(id)).collect();
    let g2 = input(
        &[("a", 0), ("b", 1), ("c", 1), ("d", 2), ("e", 2)],
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "e")],
    );
    let ch = l.update_layered(&g2);
    assert_eq!(ch.added, vec!["d".to_string(), "e".to_string()]);
    assert_eq!(ch.removed, vec!["x".to_string()]);
    let after: Vec<_> = ["a", "b", "c"].iter().map(|id| l.get(id)).collect();
    assert_eq!(before, after);
    assert!(l.get("x").is_none());
    // d sits next to its caller b, e next to c, on distinct slots.
    assert_eq!(l.get("d").unwrap().y, l.get("b").unwrap().y);
    assert_eq!(l.get("e").unwrap().y, l.get("c").unwrap().y);
}

#[test]
fn pins_override_and_round_trip_through_their_string_form() {
    let mut l = Layout::new();
    l.update_layered(&input(&[("a", 0)], &[]));
    l.pin("a", Pos { x: 5.5, y: -3.0 });
    assert_eq!(l.get("a"), Some(Pos { x: 5.5, y: -3.0 }));
    let s = l.pins_to_string();
    let mut l2 = Layout::new();
    l2.set_pins(Layout::pins_from_string(&s));
    assert_eq!(l2.pins(), l.pins());
    l.update_layered(&input(&[("a", 0), ("b", 1)], &[("a", "b")]));
    assert_eq!(l.get("a"), Some(Pos { x: 5.5, y: -3.0 }));
}

fn min_distance(l: &Layout, ids: &[String]) -> f32 {
    let mut by_x: Vec<Pos> = ids.iter().map(|id| l.get(id).unwrap()).collect();
    by_x.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut best = f32::MAX;
    for (i, a) in by_x.iter().enumerate() {
        for b in &by_x[i + 1..] {
            if b.x - a.x >= best {
                break;
            }
            best = best.min(((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt());
        }
    }
    best
}

#[test]
fn two_thousand_services_fill_the_screen_shape_instead_of_a_strip() {
    let g = crate::synth::mesh(2000, 5000, 6, 3);
    let mut l = Layout::new();
    l.set_aspect(1.7);
    l.update_layered(&Input::of(&g));
    let (x0, y0, x1, y1) = l.bounds().unwrap();
    let (w, h) = (x1 - x0 + COLUMN, y1 - y0 + ROW);
    let aspect = w / h;
    assert!((1.1..2.6).contains(&aspect), "aspect {aspect} ({w} x {h})");
    // The zoom at which it fits a 1000x588 area is several times the unwrapped one's.
    let unwrapped_height = 400.0 * ROW;
    let zoom = (1000.0 / w).min(588.0 / h);
    assert!(zoom > 6.0 * 588.0 / unwrapped_height, "zoom {zoom}");
    let ids: Vec<String> = g.nodes.iter().map(|n| n.id.clone()).collect();
    assert!(min_distance(&l, &ids) >= ROW.min(SUB_COLUMN) - 0.01);
    // Ranks still read left to right: every node of rank r left of every node of r + 1.
    let rank: HashMap<&str, u32> = g.nodes.iter().map(|n| (n.id.as_str(), n.rank)).collect();
    let mut span: BTreeMap<u32, (f32, f32)> = BTreeMap::new();
    for (id, r) in &rank {
        let x = l.get(id).unwrap().x;
        let e = span.entry(*r).or_insert((x, x));
        *e = (e.0.min(x), e.1.max(x));
    }
    let spans: Vec<_> = span.values().collect();
    assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
}

#[test]
fn a_wide_screen_wraps_more_than_a_tall_one() {
    let g = crate::synth::mesh(600, 1200, 4, 3);
    let shape = |aspect| {
        let mut l = Layout::new();
        l.set_aspect(aspect);
        l.update_layered(&Input::of(&g));
        let (x0, y0, x1, y1) = l.bounds().unwrap();
        (x1 - x0) / (y1 - y0)
    };
    assert!(shape(2.5) > 1.5 * shape(0.8));
}

#[test]
fn incremental_updates_fill_the_wrapped_grid_without_collisions() {
    let g = crate::synth::mesh(800, 2000, 5, 11);
    let mut l = Layout::new();
    l.update_layered(&Input::of(&g));
    let before: HashMap<String, Pos> = g
        .nodes
        .iter()
        .map(|n| (n.id.clone(), l.get(&n.id).unwrap()))
        .collect();
    let mut next = g.clone();
    let extra = crate::synth::mesh(120, 300, 5, 12);
    for mut n in extra.nodes.into_iter().skip(1) {
        n.id = format!("new-{}", n.id);
        next.nodes.push(n);
    }
    // A rank the first layout never had goes to its own column on the right.
    let mut late = next.nodes[1].clone();
    late.id = "late".into();
    late.rank = 9;
    next.nodes.push(late);
    let ch = l.update_layered(&Input::of(&next));
    assert_eq!(ch.added.len(), 121);
    for (id, p) in &before {
        assert_eq!(l.get(id), Some(*p), "{id} moved");
    }
    let ids: Vec<String> = next.nodes.iter().map(|n| n.id.clone()).collect();
    assert!(min_distance(&l, &ids) >= ROW.min(SUB_COLUMN) - 0.01);
    let right = before.values().map(|p| p.x).fold(f32::MIN, f32::max);
    assert!(l.get("late").unwrap().x > right);
}

#[test]
fn wrapped_maps_spread_rows_to_fill_the_height() {
    let g = crate::synth::mesh(400, 1000, 7, 3);
    let mut l = Layout::new();
    l.set_aspect(1.45);
    l.update_layered(&Input::of(&g));
    let (x0, y0, x1, y1) = l.bounds().unwrap();
    let aspect = (x1 - x0 + COLUMN) / (y1 - y0 + ROW);
    assert!((1.0..2.0).contains(&aspect), "{aspect}");
    assert!(l.row > ROW && l.row <= 1.5 * ROW, "{}", l.row);
    // A map already as tall as the screen's shape keeps its rows.
    assert_eq!(row_pitch(&[(0, 1), (1, 3), (2, 6)], 6, 1.7), ROW);
}

#[test]
fn a_wide_shallow_map_spreads_its_rows_without_wrapping() {
    // The demo's shape: five ranks, six rows at most — wider than the screen at ROW.
    let sizes = [(0, 1), (1, 3), (2, 6), (3, 5), (4, 2)];
    let h = wrap_height(&sizes, DEFAULT_ASPECT);
    assert_eq!(h, 6, "not wrapped");
    let pitch = row_pitch(&sizes, h, DEFAULT_ASPECT);
    assert!(pitch > ROW && pitch <= 1.5 * ROW, "{pitch}");
    let mut l = Layout::new();
    let nodes: Vec<(String, u32)> = sizes
        .iter()
        .flat_map(|&(r, n)| (0..n).map(move |k| (format!("s{r}-{k}"), r)))
        .collect();
    let refs: Vec<(&str, u32)> = nodes.iter().map(|(id, r)| (id.as_str(), *r)).collect();
    l.update_layered(&input(&refs, &[]));
    let (x0, y0, x1, y1) = l.bounds().unwrap();
    // The picture's shape (with a node's room around it, as the fit leaves) is closer to
    // the screen's than at ROW: its height share of a fitted canvas is at least 60%.
    let (w, h) = (x1 - x0 + COLUMN, y1 - y0 + ROW);
    let share = (h / w) * DEFAULT_ASPECT;
    assert!(share >= 0.6, "height share {share} ({w} x {h})");
}

#[test]
fn wraps_only_where_it_gains_zoom() {
    // The demo's shape (five ranks of a few services) is wider than tall: no wrap.
    let sizes = [(0, 1), (1, 3), (2, 6), (3, 5), (4, 2)];
    assert_eq!(wrap_height(&sizes, DEFAULT_ASPECT), 6);
    // One caller of 18 services is a tall strip: it wraps (into 4 sub-columns of 5 rows).
    assert_eq!(wrap_height(&[(0, 1), (1, 18)], 1.7), 5);
    // On a portrait screen the same strip stays whole.
    assert_eq!(wrap_height(&[(0, 1), (1, 18)], 0.4), 18);
}

#[test]
fn ring_puts_the_entry_in_the_middle() {
    let mut l = Layout::new();
    let g = input(
        &[
            ("INTERNET", 0),
            ("region:eu", 1),
            ("region:us", 1),
            ("region:ap", 1),
        ],
        &[],
    );
    l.update_ring(&g, "INTERNET");
    assert_eq!(l.get("INTERNET"), Some(Pos { x: 0.0, y: 0.0 }));
    let r = |id| {
        let p = l.get(id).unwrap();
        (p.x * p.x + p.y * p.y).sqrt()
    };
    assert!((r("region:eu") - r("region:us")).abs() < 0.01);
    assert!(r("region:ap") > 100.0);
}
