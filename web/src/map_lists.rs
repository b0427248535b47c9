//! The lists beside the map (services, edges), bounded: at 2,000 services a list of every node
//! and edge was ~7,000 `<li>` (14,500 DOM nodes) rebuilt on every live update. Each list shows
//! at most [`LIST_CAP`] rows — the ones an on-call engineer looks for first (the entry, failing,
//! then busiest) — in the map's own order, says how many more there are, and a filter reaches
//! any row: the cap applies to what matches, so typing part of a name brings a row from far down
//! the list into it. The rows on screen follow what is to be shown in bounded steps ([`step`],
//! [`LIST_CHUNK`] rows a frame), never all of them in one task.

/// Rows a list shows at most (after the filter).
pub const LIST_CAP: usize = 200;

/// Rows created or changed on screen in one task, both lists together: a live update of a big
/// map changes the figures of nearly every shown row (400 with both lists full), and setting
/// them all in one task, with the DOM updates they set off, was a 51–94 ms task on the test
/// machine. The rows are brought up to date [`LIST_CHUNK`] at a time, one step per frame in a
/// task of its own (`app::map_rows`), so a frame or a key press never waits behind more than
/// one chunk.
pub const LIST_CHUNK: usize = 25;

/// A wanted row as the list on screen has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowState {
    /// Not on screen: to be created.
    Absent,
    /// On screen with what it should show.
    Same,
    /// On screen with other figures: to be updated in place.
    Changed,
}

/// One step of bringing a list on screen up to date with the wanted rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// The wanted rows on screen after the step (indices into the wanted rows, in their order):
    /// those already there and those this step creates. Rows on screen not wanted at all are
    /// removed at once (a removal is one DOM call, and at most [`LIST_CAP`] of them).
    pub shown: Vec<usize>,
    /// Rows to create.
    pub create: Vec<usize>,
    /// Rows on screen to update in place.
    pub update: Vec<usize>,
    /// Nothing is left to create or update after this step.
    pub done: bool,
}

impl Step {
    /// Rows this step creates or updates (what [`LIST_CHUNK`] bounds).
    pub fn rows(&self) -> usize {
        self.create.len() + self.update.len()
    }
}

/// The next step toward the `n` wanted rows, creating and updating at most `budget` of them —
/// the first in the list's order, so the top of the list (what is in view) is right first.
/// Rows already right cost nothing: a live update that changes no figure a row shows changes
/// no row. Unchanged rows keep their place (creation only inserts), so keyed rows are never
/// re-created and keyboard focus stays where it is.
pub fn step(n: usize, state: impl Fn(usize) -> RowState, budget: usize) -> Step {
    let mut s = Step {
        done: true,
        ..Step::default()
    };
    for i in 0..n {
        match state(i) {
            RowState::Same => s.shown.push(i),
            RowState::Changed => {
                s.shown.push(i);
                if s.rows() < budget {
                    s.update.push(i);
                } else {
                    s.done = false;
                }
            }
            RowState::Absent if s.rows() < budget => {
                s.shown.push(i);
                s.create.push(i);
            }
            RowState::Absent => s.done = false,
        }
    }
    s
}

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

    /// Drives `step` as the page does: a screen (key → value) brought to `want` one step at a
    /// time; returns the rows each step changed.
    fn converge(screen: &mut Vec<(u32, u32)>, want: &[(u32, u32)], budget: usize) -> Vec<usize> {
        let mut chunks = Vec::new();
        for _ in 0..1000 {
            let on = |k: u32| screen.iter().find(|r| r.0 == k).map(|r| r.1);
            let s = step(
                want.len(),
                |i| match on(want[i].0) {
                    None => RowState::Absent,
                    Some(v) if v == want[i].1 => RowState::Same,
                    Some(_) => RowState::Changed,
                },
                budget,
            );
            // What the page does with a step: the wanted rows on screen, in order, the created
            // and updated ones with their new values, the others as they were.
            let next: Vec<(u32, u32)> = s
                .shown
                .iter()
                .map(|&i| {
                    if s.create.contains(&i) || s.update.contains(&i) {
                        want[i]
                    } else {
                        (want[i].0, on(want[i].0).unwrap())
                    }
                })
                .collect();
            *screen = next;
            chunks.push(s.rows());
            if s.done {
                return chunks;
            }
        }
        panic!("never caught up: {chunks:?}");
    }

    #[test]
    fn a_full_list_is_built_and_updated_in_chunks_of_at_most_the_budget() {
        // The first fill: 200 rows, 25 at a time, top first; every step shows a prefix.
        let want: Vec<(u32, u32)> = (0..200).map(|k| (k, 0)).collect();
        let mut screen = Vec::new();
        let chunks = converge(&mut screen, &want, 25);
        assert_eq!(chunks, vec![25; 8]);
        assert_eq!(screen, want);
        // A live update that changes every row's figures: in place, 25 at a time.
        let want2: Vec<(u32, u32)> = (0..200).map(|k| (k, 1)).collect();
        assert_eq!(converge(&mut screen, &want2, 25), vec![25; 8]);
        assert_eq!(screen, want2);
        // An update that changes nothing a row shows changes no row, in one step.
        assert_eq!(converge(&mut screen, &want2, 25), vec![0]);
    }

    #[test]
    fn rows_leave_at_once_arrive_in_order_and_the_rest_keep_their_place() {
        let mut screen: Vec<(u32, u32)> = (0..10).map(|k| (k, 0)).collect();
        // Rows 0..5 leave, 100..120 arrive between the others, 7 changes.
        let mut want: Vec<(u32, u32)> = (5..10).map(|k| (k, u32::from(k == 7))).collect();
        want.splice(2..2, (100..120).map(|k| (k, 0)));
        let s = step(
            want.len(),
            |i| match screen.iter().find(|r| r.0 == want[i].0) {
                None => RowState::Absent,
                Some(r) if r.1 == want[i].1 => RowState::Same,
                Some(_) => RowState::Changed,
            },
            8,
        );
        // The first step: the rows that stay (5, 6, 7, 8, 9 at want's 0, 1, 22, 23, 24) and
        // the first 8 arrivals in order; 7's change waits for the next step.
        assert_eq!(s.create, (2..10).collect::<Vec<_>>());
        assert!(s.update.is_empty() && !s.done);
        assert_eq!(s.shown, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 22, 23, 24]);
        let chunks = converge(&mut screen, &want, 8);
        assert_eq!(chunks, vec![8, 8, 5]);
        assert_eq!(screen, want);
        // A zero budget never claims to be done with rows left.
        let s = step(1, |_| RowState::Absent, 0);
        assert_eq!((s.shown.len(), s.done), (0, false));
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
