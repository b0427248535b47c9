//! The lists beside the map (services, edges), bounded: at 2,000 services a list of every node
//! and edge was ~7,000 `<li>` (14,500 DOM nodes) rebuilt on every live update. Each list shows
//! at most [`LIST_CAP`] rows — the ones an on-call engineer looks for first (the entry, failing,
//! then busiest) — in the map's own order, says how many more there are, and a filter reaches
//! any row: the cap applies to what matches, so typing part of a name brings a row from far down
//! the list into it.

/// Rows a list shows at most (after the filter).
pub const LIST_CAP: usize = 200;

/// Which rows of a list to show: `rows` are indices into the full list, in its order; `matched`
/// counts the rows that match the filter (so `matched - rows.len()` are left out).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shown {
    pub rows: Vec<usize>,
    pub matched: usize,
}

impl Shown {
    /// Matching rows not shown.
    pub fn more(&self) -> usize {
        self.matched - self.rows.len()
    }
}

/// Importance of a row: lower first. `urgency` 0 = always first (the entry, a failing row), 1 =
/// warning, 2 = the rest; within one urgency, the busier first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rank {
    pub urgency: u8,
    pub rps: f64,
}

impl Rank {
    /// The urgency of a health (or diff state) spelling.
    pub fn of_health(health: &str, rps: f64) -> Self {
        let urgency = match health {
            "danger" => 0,
            "warning" | "added" | "vanished" => 1,
            _ => 2,
        };
        Self { urgency, rps }
    }

    fn before(&self, o: &Self) -> std::cmp::Ordering {
        self.urgency
            .cmp(&o.urgency)
            .then(o.rps.total_cmp(&self.rps))
    }
}

/// A filter as typed: case-insensitive, blanks around it ignored; empty matches everything.
pub fn normalise(filter: &str) -> String {
    filter.trim().to_lowercase()
}

/// Whether any of `texts` contains the (normalised) filter.
pub fn matches<'a>(filter: &str, texts: impl IntoIterator<Item = &'a str>) -> bool {
    filter.is_empty() || texts.into_iter().any(|t| t.to_lowercase().contains(filter))
}

/// The rows to show: of the `n` rows, those that match, the `cap` most important of them (ties
/// keep the list's order), returned in the list's order — so a live update that changes rates
/// does not reshuffle the rows a keyboard user is on. O(n log n) in the matches.
pub fn pick(
    n: usize,
    cap: usize,
    matches: impl Fn(usize) -> bool,
    rank: impl Fn(usize) -> Rank,
) -> Shown {
    let mut hit: Vec<(Rank, usize)> = (0..n)
        .filter(|&i| matches(i))
        .map(|i| (rank(i), i))
        .collect();
    let matched = hit.len();
    if hit.len() > cap {
        hit.sort_by(|a, b| a.0.before(&b.0).then(a.1.cmp(&b.1)));
        hit.truncate(cap);
    }
    let mut rows: Vec<usize> = hit.into_iter().map(|(_, i)| i).collect();
    rows.sort_unstable();
    Shown { rows, matched }
}

/// The line under a capped list: "1,850 more services — filter to narrow".
pub fn more_line(more: usize, what: &str) -> String {
    format!("{} more {what} — filter to narrow", thousands(more))
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranks(v: &[(u8, f64)]) -> impl Fn(usize) -> Rank + '_ {
        |i| Rank {
            urgency: v[i].0,
            rps: v[i].1,
        }
    }

    #[test]
    fn a_short_list_is_shown_whole_in_its_order() {
        let v = [(2, 1.0), (0, 0.1), (2, 9.0)];
        let s = pick(3, LIST_CAP, |_| true, ranks(&v));
        assert_eq!(s.rows, vec![0, 1, 2]);
        assert_eq!(s.more(), 0);
    }

    #[test]
    fn a_long_list_keeps_the_failing_then_the_busiest_in_its_order() {
        // 5,000 rows; row 4,999 fails with almost no traffic, the rest are healthy with rps = i.
        let v: Vec<(u8, f64)> = (0..5000)
            .map(|i| if i == 4999 { (0, 0.01) } else { (2, i as f64) })
            .collect();
        let s = pick(v.len(), 200, |_| true, ranks(&v));
        assert_eq!(s.rows.len(), 200);
        assert_eq!(s.matched, 5000);
        assert_eq!(s.more(), 4800);
        assert!(s.rows.contains(&4999), "the failing row is shown");
        // The other 199 are the busiest healthy ones (4,800..4,998), in the list's order.
        assert_eq!(s.rows[0], 4800);
        assert!(s.rows.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_filter_reaches_a_row_from_far_down_the_list() {
        let names: Vec<String> = (0..5000).map(|i| format!("svc-{i:04}->db")).collect();
        let v: Vec<(u8, f64)> = (0..5000).map(|i| (2, 5000.0 - i as f64)).collect();
        let all = pick(5000, 200, |_| true, ranks(&v));
        assert!(!all.rows.contains(&4321));
        let f = normalise("  SVC-4321 ");
        let s = pick(5000, 200, |i| matches(&f, [names[i].as_str()]), ranks(&v));
        assert_eq!(s.rows, vec![4321]);
        assert_eq!((s.matched, s.more()), (1, 0));
        // Nothing matching: an empty list, nothing more.
        let s = pick(
            5000,
            200,
            |i| matches("nope", [names[i].as_str()]),
            ranks(&v),
        );
        assert_eq!(s, Shown::default());
    }

    #[test]
    fn health_orders_urgency_and_the_more_line_reads() {
        assert_eq!(Rank::of_health("danger", 0.0).urgency, 0);
        assert_eq!(Rank::of_health("vanished", 0.0).urgency, 1);
        assert_eq!(Rank::of_health("normal", 0.0).urgency, 2);
        assert_eq!(
            more_line(4880, "edges"),
            "4,880 more edges — filter to narrow"
        );
        assert_eq!(
            more_line(12, "services"),
            "12 more services — filter to narrow"
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
