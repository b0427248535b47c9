//! What the trace views show besides the rows (issue 19), browser-free and unit-tested: the
//! stable colour of a service, the time ruler's ticks, the trace header's summary, child and
//! descendant counts, span search, collapse-by-depth and the trace statistics table.

use crate::waterfall::TraceModel;
use std::collections::{BTreeMap, HashSet};

/// 20 distinct colours light enough for the dark theme (as many as Jaeger UI's palette). Two
/// services of one trace can share one (a hash); the legend and the names tell them apart.
const PALETTE: [&str; 20] = [
    "#5cb8db", "#f2a65a", "#7fd18b", "#c792ea", "#f07f9c", "#e6d56a", "#65d6c8", "#9fa8ff",
    "#d99a6c", "#a6d36b", "#ef8fd9", "#7fb2f0", "#ffcb99", "#b3ad9e", "#4dc19c", "#f8dca1",
    "#e79fd5", "#89dac1", "#ff9833", "#b8c4ff",
];

/// The colour of a service: a hash of its name (FNV-1a), not its order in a trace, so a
/// service has the same colour in every trace, in the search results and in the legend.
pub fn service_colour(service: &str) -> &'static str {
    let mut h: u32 = 0x811c_9dc5;
    for b in service.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    PALETTE[(h % PALETTE.len() as u32) as usize]
}

/// A ruler tick: position in % of the trace's duration and its label (offset from the start).
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub pct: f64,
    pub label: String,
}

/// Ticks at a "nice" step (1, 2 or 5 × 10^k µs) giving about `target` intervals over
/// `duration_us`, from 0 up to the end (the end itself is a tick when it is on the step).
pub fn ticks(duration_us: i64, target: u32) -> Vec<Tick> {
    ticks_between(0.0, duration_us.max(1) as f64, target)
}

/// The ticks of a zoomed range `[from_us, to_us]` (offsets from the trace's start): the
/// multiples of a nice step inside it, positioned in % of the range.
pub fn ticks_between(from_us: f64, to_us: f64, target: u32) -> Vec<Tick> {
    let d = (to_us - from_us).max(1.0);
    let raw = d / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        .max(1.0);
    let mut out = Vec::new();
    let mut k = (from_us / step - 1e-9).ceil().max(0.0);
    while k * step <= to_us + 1e-9 && out.len() <= 2 * target as usize + 2 {
        let us = k * step;
        out.push(Tick {
            pct: (us - from_us) / d * 100.0,
            label: fmt_offset(us, step),
        });
        k += 1.0;
    }
    out
}

/// An offset in the unit of its size, with the decimals its step needs (`0`, `500ms`, `1.5s`).
fn fmt_offset(us: f64, step: f64) -> String {
    if us == 0.0 {
        return "0".into();
    }
    let (v, unit, unit_us) = if us >= 1e6 {
        (us / 1e6, "s", 1e6)
    } else if us >= 1e3 {
        (us / 1e3, "ms", 1e3)
    } else {
        (us, "µs", 1.0)
    };
    // Decimals so that consecutive ticks differ: step 0.25 ms → 2 decimals.
    let decimals = (-(step / unit_us).log10().floor()).clamp(0.0, 3.0) as usize;
    format!("{v:.decimals$}{unit}")
}

/// The trace header's figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub duration_us: i64,
    pub span_count: usize,
    pub error_count: usize,
    /// Levels of the tree (a lone root is depth 1).
    pub depth: u32,
    /// Services with their span counts, most spans first (ties by name).
    pub services: Vec<(String, usize)>,
}

pub fn summary(m: &TraceModel) -> Summary {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &m.spans {
        *by.entry(s.service.as_str()).or_default() += 1;
    }
    let mut services: Vec<(String, usize)> =
        by.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    services.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Summary {
        duration_us: if m.spans.is_empty() {
            0
        } else {
            m.end_us - m.start_us
        },
        span_count: m.spans.len(),
        error_count: m.spans.iter().filter(|s| s.is_error()).count(),
        depth: m.depth.iter().max().map(|d| d + 1).unwrap_or(0),
        services,
    }
}

/// Descendants of every span (what a collapsed row hides). From the preorder, children after
/// their parent, so one reverse pass sums them: O(n), no recursion.
pub fn descendants(m: &TraceModel) -> Vec<usize> {
    let order = m.visible_rows(&HashSet::new());
    let mut size = vec![0usize; m.spans.len()];
    for &i in order.iter().rev() {
        if let Some(p) = m.parent[i] {
            size[p] += size[i] + 1;
        }
    }
    size
}

/// The spans to collapse so that the tree shows `levels` levels (1 = the roots only): every
/// span with children at depth ≥ `levels - 1`.
pub fn collapse_below(m: &TraceModel, levels: u32) -> HashSet<usize> {
    (0..m.spans.len())
        .filter(|&i| !m.children[i].is_empty() && m.depth[i] + 1 >= levels)
        .collect()
}

/// Spans whose service, operation or span id, or an attribute's key or value (the span's, its
/// resource's, its events'), contains `query` (case-insensitive; blank matches none), in
/// display order of the uncollapsed tree.
pub fn search(m: &TraceModel, query: &str) -> Vec<usize> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    let hit = |s: &str| {
        if s.is_ascii() && q.is_ascii() {
            s.as_bytes()
                .windows(q.len())
                .any(|w| w.eq_ignore_ascii_case(q.as_bytes()))
        } else {
            s.to_lowercase().contains(&q)
        }
    };
    let named: Vec<bool> = m
        .spans
        .iter()
        .map(|s| hit(&s.service) || hit(&s.name) || hit(&s.span_id))
        .collect();
    // Also the keys and values of the span's attributes (Jaeger's find does too).
    let by_attr = m.attribute_hits(&q, &named);
    m.visible_rows(&HashSet::new())
        .into_iter()
        .filter(|&i| named[i] || by_attr[i])
        .collect()
}

/// The ancestors of `i` (to expand so that `i` shows).
pub fn ancestors(m: &TraceModel, i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = i;
    while let Some(p) = m.parent[at] {
        if out.len() > m.spans.len() {
            break; // a corrupt cycle
        }
        out.push(p);
        at = p;
    }
    out
}

/// One row of the trace statistics (per service and operation, like Jaeger's).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatRow {
    pub service: String,
    pub operation: String,
    pub count: usize,
    pub errors: usize,
    pub total_us: i64,
    pub avg_us: i64,
    pub min_us: i64,
    pub max_us: i64,
    /// Time not covered by any child (children clipped to the span, overlaps merged).
    pub self_us: i64,
}

/// The time of span `i` not spent in its children.
pub fn self_time(m: &TraceModel, i: usize) -> i64 {
    let s = &m.spans[i];
    let (a, b) = (s.start_us, s.start_us + s.duration_us.max(0));
    let mut iv: Vec<(i64, i64)> = m.children[i]
        .iter()
        .map(|&c| {
            let c = &m.spans[c];
            (c.start_us.max(a), (c.start_us + c.duration_us).min(b))
        })
        .filter(|(x, y)| y > x)
        .collect();
    iv.sort_unstable();
    let mut covered = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (x, y) in iv {
        match cur {
            Some((cx, cy)) if x <= cy => cur = Some((cx, cy.max(y))),
            Some((cx, cy)) => {
                covered += cy - cx;
                cur = Some((x, y));
            }
            None => cur = Some((x, y)),
        }
    }
    if let Some((cx, cy)) = cur {
        covered += cy - cx;
    }
    (b - a - covered).max(0)
}

/// Per service and operation: count, errors, total/avg/min/max duration and self time; the
/// biggest total first.
pub fn statistics(m: &TraceModel) -> Vec<StatRow> {
    let mut by: BTreeMap<(&str, &str), StatRow> = BTreeMap::new();
    for (i, s) in m.spans.iter().enumerate() {
        let r = by
            .entry((s.service.as_str(), s.name.as_str()))
            .or_insert_with(|| StatRow {
                service: s.service.clone(),
                operation: s.name.clone(),
                min_us: i64::MAX,
                ..Default::default()
            });
        r.count += 1;
        r.errors += s.is_error() as usize;
        r.total_us += s.duration_us;
        r.min_us = r.min_us.min(s.duration_us);
        r.max_us = r.max_us.max(s.duration_us);
        r.self_us += self_time(m, i);
    }
    let mut rows: Vec<StatRow> = by.into_values().collect();
    for r in &mut rows {
        r.avg_us = r.total_us / r.count.max(1) as i64;
    }
    rows.sort_by(|a, b| {
        b.total_us
            .cmp(&a.total_us)
            .then_with(|| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)))
    });
    rows
}

/// The zoom range `[a, b]` (fractions of the trace) a minimap drag from `x0` to `x1` (fractions
/// of its width, either direction, clamped) selects; a click or a sliver (< 0.5%) selects
/// nothing (`None`).
pub fn drag_range(x0: f64, x1: f64) -> Option<(f64, f64)> {
    let (a, b) = (x0.min(x1).clamp(0.0, 1.0), x0.max(x1).clamp(0.0, 1.0));
    (b - a >= 0.005).then_some((a, b))
}

/// The zoom range `z` moved by `dx` (fractions of the trace), its width kept and held inside
/// the trace: dragging the minimap's shown range pans the timeline.
pub fn pan_range(z: (f64, f64), dx: f64) -> (f64, f64) {
    let w = (z.1 - z.0).clamp(0.0, 1.0);
    let a = (z.0 + dx).clamp(0.0, 1.0 - w);
    (a, a + w)
}

/// The trace page's view named in the URL's `tab` (unknown or empty: the timeline).
pub fn view_tab(tab: &str) -> &'static str {
    match tab {
        "stats" => "stats",
        "spans" => "spans",
        "flame" => "flame",
        "graph" => "graph",
        _ => "timeline",
    }
}

/// Where a span's duration label goes: after the bar when there is room on the right, else
/// before it (the bar reaches the right edge).
pub fn label_after(left_pct: f64, width_pct: f64) -> bool {
    left_pct + width_pct <= 80.0
}

/// How long ago `then_us` was at `now_us`, as a search result says it ("12s ago", "3m ago",
/// "2h ago", "4d ago"; a start in the future — clock skew — is "just now").
pub fn ago(now_us: i64, then_us: i64) -> String {
    let s = (now_us - then_us) / 1_000_000;
    match s {
        ..=0 => "just now".into(),
        1..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Orders of the search results (client side, like Jaeger's "Sort").
pub const SORTS: [(&str, &str); 5] = [
    ("recent", "most recent"),
    ("longest", "longest first"),
    ("shortest", "shortest first"),
    ("spans", "most spans"),
    ("errors", "most errors"),
];

/// Sorts search results by one of [`SORTS`] (ties: most recent first, then trace id, so the
/// order is stable); an unknown key sorts by most recent.
pub fn sort_traces(list: &mut [crate::api::TraceSummary], by: &str) {
    list.sort_by(|a, b| {
        let key = match by {
            "longest" => b.duration_us.cmp(&a.duration_us),
            "shortest" => a.duration_us.cmp(&b.duration_us),
            "spans" => b.span_count.cmp(&a.span_count),
            "errors" => b.error_count.cmp(&a.error_count),
            _ => std::cmp::Ordering::Equal,
        };
        key.then_with(|| b.start_us.cmp(&a.start_us))
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Status, Trace};
    use crate::test_support::span;

    /// frontend root 0–40 ms; checkout 5–35; producer 30–32 in checkout; a late consumer in
    /// mailer 35–120 ms (after the root ends).
    fn trace() -> TraceModel {
        let mut err = span("c", "r", "checkout", "POST /orders", 5_000, 30_000);
        err.status = Status {
            code: "Error".into(),
            message: String::new(),
        };
        TraceModel::new(Trace {
            spans: vec![
                span("r", "", "frontend", "GET /checkout", 0, 40_000),
                err,
                span("p", "c", "checkout", "publish order", 30_000, 2_000),
                span("q", "p", "mailer", "consume order", 35_000, 85_000),
                span("d", "c", "checkout", "SELECT", 6_000, 10_000),
                span("d2", "c", "checkout", "SELECT", 12_000, 10_000),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn a_service_has_one_colour_everywhere_and_services_differ() {
        assert_eq!(service_colour("checkout"), service_colour("checkout"));
        let names = ["frontend", "checkout", "payments", "mailer"];
        let colours: HashSet<_> = names.iter().map(|n| service_colour(n)).collect();
        assert_eq!(colours.len(), 4, "{colours:?}");
        // Spread: 40 services take most of the palette.
        let many: HashSet<_> = (0..40)
            .map(|i| service_colour(&format!("svc-{i}")))
            .collect();
        assert!(many.len() >= 15, "{}", many.len());
        assert!(PALETTE.contains(&service_colour("")));
    }

    #[test]
    fn ticks_are_on_nice_steps_and_cover_the_trace() {
        let t = ticks(120_000, 6);
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            ["0", "20ms", "40ms", "60ms", "80ms", "100ms", "120ms"]
        );
        assert_eq!(t.last().unwrap().pct, 100.0);
        let t = ticks(2_500_000, 5);
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "500ms", "1.0s", "1.5s", "2.0s", "2.5s"]);
        assert!(t.iter().all(|t| t.pct <= 100.0));
        let t = ticks(1_000, 4);
        assert_eq!(t[1].label, "500µs");
        assert_eq!(t[2].label, "1.0ms");
        // Degenerate durations give a sane ruler.
        assert_eq!(ticks(0, 5)[0].label, "0");
        assert!(ticks(1, 5).len() <= 2);
        assert!(ticks(i64::MAX / 4, 5).len() <= 12);
        // A zoomed range: multiples of the step inside it, positioned in the range.
        let z = ticks_between(60_000.0, 160_000.0, 6);
        let labels: Vec<&str> = z.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["60ms", "80ms", "100ms", "120ms", "140ms", "160ms"]);
        assert_eq!((z[0].pct, z[5].pct), (0.0, 100.0));
        let z = ticks_between(65_000.0, 95_000.0, 6);
        assert_eq!(z[0].label, "65ms");
        assert!(z.iter().all(|t| (0.0..=100.0).contains(&t.pct)));
    }

    #[test]
    fn the_timeline_spans_the_late_consumer() {
        let m = trace();
        let s = summary(&m);
        assert_eq!(s.duration_us, 120_000, "not the root's 40 ms");
        assert_eq!(s.span_count, 6);
        assert_eq!(s.error_count, 1);
        assert_eq!(s.depth, 4);
        assert_eq!(
            s.services,
            [
                ("checkout".to_string(), 4),
                ("frontend".to_string(), 1),
                ("mailer".to_string(), 1)
            ]
        );
        let q = m.spans.iter().position(|s| s.span_id == "q").unwrap();
        let end = (m.spans[q].start_us + m.spans[q].duration_us - m.start_us) as f64
            / m.duration_us() as f64;
        assert_eq!(end, 1.0);
    }

    #[test]
    fn descendants_and_collapse_by_depth() {
        let m = trace();
        let at = |id: &str| m.spans.iter().position(|s| s.span_id == id).unwrap();
        let d = descendants(&m);
        assert_eq!(d[at("r")], 5);
        assert_eq!(d[at("c")], 4);
        assert_eq!(d[at("p")], 1);
        assert_eq!(d[at("q")], 0);
        let one = collapse_below(&m, 1);
        assert_eq!(m.visible_rows(&one).len(), 1);
        let two = collapse_below(&m, 2);
        assert_eq!(m.visible_rows(&two).len(), 2);
        assert_eq!(m.visible_rows(&collapse_below(&m, 99)).len(), 6);
    }

    #[test]
    fn search_matches_service_operation_and_id_case_insensitively() {
        let m = trace();
        let ids = |v: Vec<usize>| -> Vec<String> {
            v.into_iter().map(|i| m.spans[i].span_id.clone()).collect()
        };
        assert_eq!(ids(search(&m, "select")), ["d", "d2"]);
        assert_eq!(ids(search(&m, "MAILER")), ["q"]);
        assert_eq!(ids(search(&m, "order")), ["c", "p", "q"]);
        assert!(search(&m, "  ").is_empty());
        assert!(search(&m, "nothing-like-it").is_empty());
        assert_eq!(ids(search(&m, "ü")), Vec::<String>::new());
        let q = m.spans.iter().position(|s| s.span_id == "q").unwrap();
        assert_eq!(ids(ancestors(&m, q)), ["p", "c", "r"]);
    }

    #[test]
    fn self_time_merges_overlapping_children_and_clips_late_ones() {
        let m = trace();
        let at = |id: &str| m.spans.iter().position(|s| s.span_id == id).unwrap();
        // c 5–35: SELECTs 6–16 and 12–22 overlap (6–22 = 16), producer 30–32 (2) → 30-18 = 12.
        assert_eq!(self_time(&m, at("c")), 12_000);
        // p 30–32: its consumer starts after p ends → all self.
        assert_eq!(self_time(&m, at("p")), 2_000);
        // r 0–40: c covers 5–35.
        assert_eq!(self_time(&m, at("r")), 10_000);
        let stats = statistics(&m);
        let select = stats.iter().find(|r| r.operation == "SELECT").unwrap();
        assert_eq!(
            (select.count, select.total_us, select.self_us, select.avg_us),
            (2, 20_000, 20_000, 10_000)
        );
        assert_eq!((select.min_us, select.max_us), (10_000, 10_000));
        assert_eq!(stats[0].operation, "consume order", "biggest total first");
        let orders = stats
            .iter()
            .find(|r| r.operation == "POST /orders")
            .unwrap();
        assert_eq!(orders.errors, 1);
        // Self times add up to the time covered by some span of the tree at most.
        let total_self: i64 = stats.iter().map(|r| r.self_us).sum();
        assert!(total_self <= m.spans.iter().map(|s| s.duration_us).sum::<i64>());
    }

    #[test]
    fn fifty_thousand_spans_search_and_stats() {
        let m = TraceModel::new(crate::waterfall::synthetic_trace(50_000, 40));
        assert_eq!(descendants(&m)[m.roots[0]], 49_999);
        assert!(!search(&m, "op-3").is_empty());
        let stats = statistics(&m);
        assert_eq!(stats.iter().map(|r| r.count).sum::<usize>(), 50_000);
        assert!(stats.iter().all(|r| r.self_us <= r.total_us));
    }

    #[test]
    fn relative_times_and_sorting_of_search_results() {
        let s = 1_000_000;
        assert_eq!(ago(100 * s, 100 * s), "just now");
        assert_eq!(ago(100 * s, 200 * s), "just now");
        assert_eq!(ago(100 * s, 88 * s), "12s ago");
        assert_eq!(ago(4000 * s, 3820 * s), "3m ago");
        assert_eq!(ago(8000 * s, 800 * s), "2h ago");
        assert_eq!(ago(400_000 * s, 50_000 * s), "4d ago");
        let t =
            |id: &str, start: i64, dur: i64, spans: u64, errors: u64| crate::api::TraceSummary {
                trace_id: id.into(),
                start_us: start,
                duration_us: dur,
                span_count: spans,
                error_count: errors,
                ..Default::default()
            };
        let mut v = vec![
            t("a", 1, 50, 3, 0),
            t("b", 3, 10, 9, 2),
            t("c", 2, 90, 5, 2),
        ];
        let ids = |v: &[crate::api::TraceSummary]| -> String {
            v.iter().map(|t| t.trace_id.as_str()).collect()
        };
        sort_traces(&mut v, "recent");
        assert_eq!(ids(&v), "bca");
        sort_traces(&mut v, "longest");
        assert_eq!(ids(&v), "cab");
        sort_traces(&mut v, "shortest");
        assert_eq!(ids(&v), "bac");
        sort_traces(&mut v, "spans");
        assert_eq!(ids(&v), "bca");
        // Equal errors: the more recent first.
        sort_traces(&mut v, "errors");
        assert_eq!(ids(&v), "bca");
        sort_traces(&mut v, "nonsense");
        assert_eq!(ids(&v), "bca");
    }

    #[test]
    fn a_minimap_drag_selects_a_range_in_either_direction() {
        assert_eq!(drag_range(0.375, 1.0), Some((0.375, 1.0)));
        assert_eq!(drag_range(0.9, 0.2), Some((0.2, 0.9)));
        assert_eq!(drag_range(-0.5, 1.7), Some((0.0, 1.0)));
        assert_eq!(drag_range(0.5, 0.501), None);
        let near =
            |(a, b): (f64, f64), (x, y): (f64, f64)| (a - x).abs() < 1e-9 && (b - y).abs() < 1e-9;
        assert!(near(pan_range((0.2, 0.4), 0.1), (0.3, 0.5)));
        assert!(
            near(pan_range((0.2, 0.4), 0.9), (0.8, 1.0)),
            "held inside, width kept"
        );
        assert!(near(pan_range((0.2, 0.4), -0.5), (0.0, 0.2)));
        assert_eq!(view_tab("flame"), "flame");
        assert_eq!(view_tab("<script>"), "timeline");
    }

    #[test]
    fn duration_labels_go_where_there_is_room() {
        assert!(label_after(10.0, 20.0));
        assert!(!label_after(50.0, 50.0));
    }
}
