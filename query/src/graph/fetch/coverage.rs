//! Coverage planning: from the rollup markers ([`Rolled`]) and the exactness rule
//! ([`super::current`]: which minutes, hours, days and slots are current), which parts of a
//! window are read from day, hourly or minute rows, from 10-second slots, from spans, or left
//! out ([`Coverage`]).

use std::collections::BTreeSet;

use super::Window;
use super::markers::{DAY_S, HOUR_NS, MINUTE_NS, Rolled, SLOT_NS, cover_ranges};

impl Rolled {
    /// How `w` is read (the markers must cover `w`).
    pub fn coverage(&self, w: Window) -> Coverage {
        let marked = self.marked_ranges(w.lo, w.hi);
        let busy: BTreeSet<i64> = self
            .spans
            .range(w.lo..w.hi)
            .filter(|(_, n)| **n > 0)
            .map(|(m, _)| *m)
            .collect();
        let mut c = coverage_of(
            w,
            &marked,
            self.current_hours(),
            &self.outdated(w.lo, w.hi),
            &busy,
            (self.max_unrolled, self.readable_from),
        );
        // Whole days of those hours from day rows (their minute bounds stay as they are).
        c.days = self.whole_days(&c.hours);
        if !c.days.is_empty() {
            let days = &c.days;
            c.hours.retain(|h| {
                let day = *h - *h % DAY_S;
                days.binary_search(&day).is_err()
            });
        }
        // The tail from the first unmarked minute: its current slots from slot rows.
        if let Some(tail) = c.live.last_mut()
            && tail.0 == c.live_lo
        {
            let hi = self.slot_frontier(c.live_lo).min(tail.1);
            c.slots = (c.live_lo, hi);
            tail.0 = hi;
            if tail.0 >= tail.1 {
                c.live.pop();
            }
        } else {
            c.slots = (c.live_lo, c.live_lo);
        }
        c.through = self.through(w, c.live_lo);
        if let Some(through) = c.through {
            // The newest seconds are left to the next slot: every range read from spans ends
            // at the settled frontier (normally the tail after the slots is then empty).
            for r in &mut c.live {
                r.1 = r.1.min(through);
            }
            c.live.retain(|r| r.0 < r.1);
        }
        c
    }

    /// Where a live window's graph ends (ns) when it is not read to now: the end of the
    /// newest 10-second slot the rollup has closed — 5–15 s ago while it keeps up. Calls that
    /// started after it are still being exported (a client span leaves its SDK when its call
    /// ends, 5 s later by default), and joining them is the costliest statement of a live
    /// read (docs/decisions.md "A live graph ends at the settled frontier"). `None` (read to
    /// now) unless [`Rolled::ends_settled`], for a window of the past, and when the slot
    /// rollup is more than [`SETTLED_LAG_NS`] behind or not past the minutes' frontier
    /// (`live_lo`): a stalled rollup must not stop the map.
    pub fn settled_through(&self, w: Window) -> Option<i64> {
        self.coverage(w).through
    }

    fn through(&self, w: Window, live_lo: i64) -> Option<i64> {
        if !self.ends_settled || !w.live() {
            return None;
        }
        let end = self.slots.last_key_value()?.0 + SLOT_NS;
        (end >= live_lo && end > w.lo && end < w.now && end >= w.now - SETTLED_LAG_NS)
            .then_some(end)
    }
}

/// How far behind now the slot rollup's newest slot may end for a live graph to end there
/// ([`Rolled::settled_through`]); further behind, the graph reads its tail from spans to now.
/// A keeping-up rollup's is 5–15 s (the grace, a slot) plus its pass; the bound is also the
/// most a graph's end can step back when a lagging rollup catches up (read to now, then to
/// its frontier), so it is kept close to that.
pub const SETTLED_LAG_NS: i64 = 30_000_000_000;

/// At most this many separate live ranges per window (each is one query per part); past it
/// the oldest are left out (reported as uncovered) rather than merged across what lies
/// between them, which could be days of spans.
const MAX_LIVE_RANGES: usize = 4;
/// Live ranges closer than this are read as one (the rolled-up minutes between them too).
const MERGE_GAP_NS: i64 = 5 * MINUTE_NS;

/// How a window is read: whole hours whose hourly rows are current, the current rolled-up
/// minutes for the rest of `[w.lo, live_lo)`, spans for the `live` ranges, and nothing for
/// the `uncovered` ones. `live_lo` is the end of the window's last marked minute: the rollup
/// marks every closed minute, empty ones too, so normally the tail `[live_lo, w.hi)` is the
/// last minute or two. Before it, unmarked stretches with spans (old data the hourly backfill
/// has not reached, or a time the rollup did not run) and outdated minutes are read from spans
/// while they fit `--graph-max-unrolled`, newest first; the rest is `uncovered`: left out of
/// the answer and reported in its data quality, so no window ever joins days of spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Hours read from hourly rows (Unix seconds), outside the `days`.
    pub hours: Vec<u32>,
    /// Whole UTC days read from day rows (Unix seconds, schema v13): 24 current hours each
    /// whose day marker matches them ([`Rolled::whole_days`]).
    pub days: Vec<u32>,
    pub live_lo: i64,
    /// Marked minutes before `live_lo` not read from rollups (Unix seconds): those inside the
    /// `live` ranges (read from spans) and inside the `uncovered` ones (left out).
    pub live_minutes: Vec<u32>,
    /// At most [`super::markers::MAX_BOUNDS`] `[lo, hi)` ranges (ns) holding every minute read
    /// from minute rows — `[w.lo, live_lo)` but the hours — so that read scans only the
    /// window's ragged ends and the hours around late spans, never the whole window.
    pub minute_bounds: Vec<(i64, i64)>,
    /// `[lo, hi)` ranges (ns, ascending, disjoint) read from spans.
    pub live: Vec<(i64, i64)>,
    /// `[live_lo, hi)` read from 10-second slot rows (empty when `hi == live_lo`): the tail's
    /// current slots; the last live range starts where they end.
    pub slots: (i64, i64),
    /// `[lo, hi)` ranges (ns, ascending, disjoint) with spans but neither rolled up nor read:
    /// what the answer leaves out.
    pub uncovered: Vec<(i64, i64)>,
    /// Where a live window ends when it is not read to now ([`Rolled::settled_through`]):
    /// nothing after it is read.
    pub through: Option<i64>,
}

/// Ranges `[lo, hi)` of consecutive minutes, merged when closer than [`MERGE_GAP_NS`].
fn push_range(out: &mut Vec<(i64, i64)>, (lo, hi): (i64, i64)) {
    match out.last_mut() {
        Some(last) if lo - last.1 < MERGE_GAP_NS => last.1 = last.1.max(hi),
        _ => out.push((lo, hi)),
    }
}

/// What of `w` is rolled up, read from spans or left out, from the marked minutes (ascending,
/// disjoint `[lo, hi)` ranges, ns), the current hours, the marked minutes that are not current
/// (`outdated`), the minutes that hold spans (`busy`, counted on insert; only where they are
/// not all marked) and the budget of spans-read time (`max_unrolled`, ns) with the time before
/// which nothing is read from spans (`readable_from`). Minutes once marked stay marked, so
/// everything rolled up is still there when the data queries run; the live ranges are computed
/// from spans (even minutes marked or recomputed since), and the rolled-up part leaves out
/// exactly their minutes and the uncovered ones, so no part overlaps another. An hour is used
/// only when it ends by `live_lo`, overlaps no live or uncovered range, and its marker was
/// computed from the current computation of each of its minutes. Unmarked minutes without
/// spans need nothing.
pub fn coverage_of(
    w: Window,
    marked: &[(i64, i64)],
    current_hours: impl Iterator<Item = i64>,
    outdated: &BTreeSet<i64>,
    busy: &BTreeSet<i64>,
    (max_unrolled, readable_from): (i64, i64),
) -> Coverage {
    let marked: Vec<(i64, i64)> = marked
        .iter()
        .map(|&(a, b)| (a.max(w.lo), b.min(w.hi)))
        .filter(|(a, b)| a < b)
        .collect();
    let live_lo = marked.last().map_or(w.lo, |r| r.1).clamp(w.lo, w.hi);
    // Candidates before the tail, ascending: unmarked stretches trimmed to their minutes with
    // spans, and outdated minutes.
    let mut holes: Vec<(i64, i64)> = Vec::new();
    let mut at = w.lo;
    for &(m, end) in marked.iter().chain(std::iter::once(&(live_lo, live_lo))) {
        if m > at
            && let (Some(&first), Some(&last)) =
                (busy.range(at..m).next(), busy.range(at..m).next_back())
        {
            holes.push((first, last + MINUTE_NS));
        }
        at = at.max(end);
    }
    let mut starts: Vec<(i64, i64)> = holes;
    starts.extend(outdated.range(w.lo..live_lo).map(|&m| (m, m + MINUTE_NS)));
    starts.sort_unstable();
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for r in starts {
        push_range(&mut ranges, r);
    }
    let tail = live_lo < w.hi;
    if tail {
        push_range(&mut ranges, (live_lo, w.hi));
    }
    // Newest first within the budget: the tail always (its newest `max_unrolled` when a
    // lagging rollup left more), then each older range whole if it still fits.
    let mut budget = max_unrolled.max(0);
    let (mut live, mut uncovered) = (Vec::new(), Vec::new());
    for (i, &(lo, hi)) in ranges.iter().enumerate().rev() {
        let is_tail = tail && i + 1 == ranges.len();
        // What lies before `readable_from` is left out whatever the budget.
        let trim = |(a, b): (i64, i64)| {
            let (f, l) = (busy.range(a..b).next(), busy.range(a..b).next_back());
            f.zip(l).map(|(f, l)| (*f, *l + MINUTE_NS))
        };
        if hi <= readable_from {
            uncovered.extend(trim((lo, hi)));
            continue;
        }
        let lo = if lo < readable_from {
            uncovered.extend(trim((lo, readable_from)));
            readable_from
        } else {
            lo
        };
        // `saturating_sub`: a caller's window may reach far before 1970 (the Jaeger API clamps its
        // ends to ±(2100 − 1970), whose span still fits, but this must not rely on it).
        if live.len() >= MAX_LIVE_RANGES {
            uncovered.push((lo, hi));
        } else if hi.saturating_sub(lo) <= budget {
            budget -= hi - lo;
            live.push((lo, hi));
        } else if is_tail {
            let cut = (hi - budget.div_euclid(MINUTE_NS) * MINUTE_NS).max(lo);
            if cut < hi {
                live.push((cut, hi));
            }
            // What is left out of the tail, trimmed to its minutes with spans.
            if let (Some(&first), Some(&last)) =
                (busy.range(lo..cut).next(), busy.range(lo..cut).next_back())
            {
                uncovered.push((first, last + MINUTE_NS));
            }
            budget = 0;
        } else {
            uncovered.push((lo, hi));
        }
    }
    live.reverse();
    uncovered.sort_unstable();
    // Marked minutes not read from rollups: in a live or uncovered range, before `live_lo`.
    let live_minutes: Vec<u32> = live
        .iter()
        .chain(&uncovered)
        .flat_map(|&(lo, hi)| {
            let hi = hi.min(live_lo);
            marked
                .iter()
                .filter(move |&&(a, b)| a < hi && b > lo)
                .flat_map(move |&(a, b)| (a.max(lo)..b.min(hi)).step_by(MINUTE_NS as usize))
        })
        .map(|m| (m / 1_000_000_000) as u32)
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    let hours: Vec<u32> = current_hours
        .filter(|&h| h >= w.lo && h + HOUR_NS <= live_lo)
        .filter(|&h| {
            !live
                .iter()
                .chain(&uncovered)
                .any(|&(lo, hi)| lo < h + HOUR_NS && hi > h)
        })
        .map(|h| (h / 1_000_000_000) as u32)
        .collect();
    // Minute rows: `[w.lo, live_lo)` but the hours read whole (the live and uncovered minutes
    // are left out by the read itself), as at most a few ranges.
    let mut rest: Vec<(i64, i64)> = Vec::new();
    let mut at = w.lo;
    for h in hours.iter().map(|h| *h as i64 * 1_000_000_000) {
        if h > at {
            rest.push((at, h));
        }
        at = at.max(h + HOUR_NS);
    }
    if live_lo > at {
        rest.push((at, live_lo));
    }
    Coverage {
        hours,
        days: Vec::new(),
        live_lo,
        live_minutes,
        minute_bounds: cover_ranges(&rest),
        live,
        slots: (live_lo, live_lo),
        uncovered,
        through: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::current::QualityAgg;
    use super::super::markers::{
        DEFAULT_MAX_UNROLLED_NS, HourSum, MinuteMarker, SLOT_NS, SlotMark,
    };
    use super::*;
    use std::collections::BTreeMap;

    const M: i64 = MINUTE_NS;

    fn w(lo: i64, hi: i64) -> Window {
        Window { lo, hi, now: hi }
    }

    fn marked(n: i64) -> BTreeMap<i64, MinuteMarker> {
        (0..n)
            .map(|i| {
                (
                    i * M,
                    MinuteMarker {
                        minute: (i * 60) as u32,
                        computed_at: 1,
                        spans: 10,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_minute_whose_count_changed_is_read_live_with_its_neighbours() {
        let mut r = Rolled {
            minutes: marked(120),
            ..Default::default()
        };
        r.spans = r.minutes.keys().map(|m| (*m, 10)).collect();
        // Everything current: the window's whole hours from hourly rows, no live part but the
        // unmarked tail.
        r.hours.insert(0, 60);
        r.hours.insert(60 * M, 60);
        let c = r.coverage(w(0, 125 * M));
        assert_eq!(c.hours, vec![0, 3600]);
        assert_eq!(c.live_lo, 120 * M);
        assert_eq!(c.live, vec![(120 * M, 125 * M)]);
        assert!(c.live_minutes.is_empty());
        assert_eq!(
            r.quality(w(0, 125 * M)),
            QualityAgg {
                spans: 1200,
                late: 0
            }
        );

        // Two spans backdated into minute 30: minutes 29..=32 are read live, the first hour
        // falls back to minute rows, the second stays hourly.
        r.spans.insert(30 * M, 12);
        let c = r.coverage(w(0, 125 * M));
        assert_eq!(c.hours, vec![3600]);
        assert_eq!(c.live, vec![(29 * M, 33 * M), (120 * M, 125 * M)]);
        assert_eq!(c.live_minutes, vec![29 * 60, 30 * 60, 31 * 60, 32 * 60]);
        assert_eq!(
            r.quality(w(0, 125 * M)),
            QualityAgg {
                spans: 1202,
                late: 2
            }
        );

        // A minute marked empty that got spans is read live; they are not late.
        r.minutes.get_mut(&(100 * M)).unwrap().spans = 0;
        r.spans.insert(100 * M, 3);
        assert_eq!(r.pending_late(100 * M), 0);
        assert!(r.is_stale(100 * M));
        // Near the tail: merged with it.
        r.minutes.get_mut(&(118 * M)).unwrap().spans = 9;
        let c = r.coverage(w(0, 125 * M));
        assert_eq!(
            c.live,
            vec![(29 * M, 33 * M), (99 * M, 103 * M), (117 * M, 125 * M)]
        );
        assert!(c.hours.is_empty());
        // No count at all (spans from before schema v4): the rollup stays good.
        r.spans.remove(&(50 * M));
        assert!(!r.is_stale(50 * M));
    }

    #[test]
    fn current_slots_shorten_the_tail_and_a_stale_slot_ends_them_one_early() {
        const S: i64 = SLOT_NS;
        let mut r = Rolled {
            minutes: marked(10),
            ..Default::default()
        };
        r.spans = r.minutes.keys().map(|m| (*m, 10)).collect();
        // Slots of minute 10 and the first half of minute 11 rolled up.
        for i in 0..9 {
            let at = 10 * M + i * S;
            r.slots.insert(
                at,
                SlotMark {
                    at: (at / 1_000_000_000) as u32,
                    computed_at: 1,
                    spans: 5,
                },
            );
            r.slot_spans.insert(at, 5);
        }
        let c = r.coverage(w(0, 12 * M));
        assert_eq!(c.live_lo, 10 * M);
        assert_eq!(c.slots, (10 * M, 10 * M + 9 * S));
        assert_eq!(c.live, vec![(10 * M + 9 * S, 12 * M)]);
        // A span backdated into slot 4: slots 3.. are read from spans.
        r.slot_spans.insert(10 * M + 4 * S, 6);
        let c = r.coverage(w(0, 12 * M));
        assert_eq!(c.slots, (10 * M, 10 * M + 3 * S));
        assert_eq!(c.live, vec![(10 * M + 3 * S, 12 * M)]);
        // A stale minute merged with the tail: no slot part (it is all read from spans).
        r.spans.insert(8 * M, 11);
        let c = r.coverage(w(0, 12 * M));
        assert_eq!(c.slots.0, c.slots.1);
        assert_eq!(c.live, vec![(7 * M, 12 * M)]);
        // A closed window ending at the frontier has neither slots nor a tail.
        let c = r.coverage(w(0, 10 * M));
        assert_eq!(c.slots.0, c.slots.1);
        assert_eq!(c.live, vec![(7 * M, 10 * M)]);
    }

    #[test]
    fn a_live_window_ends_at_the_newest_closed_slot_while_the_slot_rollup_keeps_up() {
        const S: i64 = SLOT_NS;
        const SEC: i64 = 1_000_000_000;
        let mut r = Rolled {
            minutes: marked(10),
            ends_settled: true,
            ..Default::default()
        };
        r.spans = r.minutes.keys().map(|m| (*m, 10)).collect();
        for i in 0..9 {
            let at = 10 * M + i * S;
            let mark = SlotMark {
                at: (at / SEC) as u32,
                computed_at: 1,
                spans: 5,
            };
            r.slots.insert(at, mark);
            r.slot_spans.insert(at, 5);
        }
        let newest = 10 * M + 9 * S;
        let at = |now: i64| Window {
            lo: 0,
            hi: 12 * M,
            now,
        };
        // 7 s after the newest slot's end: the graph ends there, nothing read from spans.
        let c = r.coverage(at(newest + 7 * SEC));
        assert_eq!(c.through, Some(newest));
        assert_eq!(c.slots, (10 * M, newest));
        assert!(c.live.is_empty(), "{c:?}");
        assert_eq!(r.settled_through(at(newest + 7 * SEC)), Some(newest));
        // Read to now when asked (`--graph-live-edge-from-spans`, detail reads).
        r.ends_settled = false;
        let c = r.coverage(at(newest + 7 * SEC));
        assert_eq!((c.through, c.live.clone()), (None, vec![(newest, 12 * M)]));
        r.ends_settled = true;
        // A span backdated into slot 4: slots 3..9 from spans, still not past the frontier.
        r.slot_spans.insert(10 * M + 4 * S, 6);
        let c = r.coverage(at(newest + 7 * SEC));
        assert_eq!(c.slots, (10 * M, 10 * M + 3 * S));
        assert_eq!(c.live, vec![(10 * M + 3 * S, newest)]);
        r.slot_spans.insert(10 * M + 4 * S, 5);
        // A slot rollup more than 30 s behind: the tail is read to now.
        let late = newest + SETTLED_LAG_NS + SEC;
        let c = r.coverage(Window {
            hi: 13 * M,
            ..at(late)
        });
        assert_eq!((c.through, c.live.clone()), (None, vec![(newest, 13 * M)]));
        // A window of the past ends where it ends.
        let c = r.coverage(Window {
            hi: 11 * M,
            ..at(newest + 7 * SEC)
        });
        assert_eq!((c.through, c.slots), (None, (10 * M, 11 * M)));
        // Slots behind the minutes' frontier (the minutes marked past them): read to now.
        let mut ahead = Rolled {
            minutes: marked(12),
            ..r
        };
        ahead.spans = ahead.minutes.keys().map(|m| (*m, 10)).collect();
        let c = ahead.coverage(Window {
            lo: 0,
            hi: 13 * M,
            now: 12 * M + 10 * SEC,
        });
        assert_eq!((c.through, c.live.clone()), (None, vec![(12 * M, 13 * M)]));
    }

    #[test]
    fn many_outdated_ranges_keep_the_newest_and_leave_the_rest_out() {
        let mut r = Rolled {
            minutes: marked(200),
            ..Default::default()
        };
        r.spans = r.minutes.keys().map(|m| (*m, 10)).collect();
        for m in [10, 30, 50, 70, 90, 110] {
            r.spans.insert(m * M, 11);
        }
        let c = r.coverage(w(0, 200 * M));
        // Six ranges (minutes 9..13, 29..33, ...): the newest four read from spans, the two
        // oldest left out (never merged across the hour between them and the rest).
        assert_eq!(
            c.live,
            vec![
                (49 * M, 53 * M),
                (69 * M, 73 * M),
                (89 * M, 93 * M),
                (109 * M, 113 * M)
            ]
        );
        assert_eq!(c.uncovered, vec![(9 * M, 13 * M), (29 * M, 33 * M)]);
        // Neither is read from rollups (their rows are stale).
        assert_eq!(c.live_minutes.len(), 24);
        assert_eq!(r.uncovered_spans(&c), 8 * 10 + 2);
    }

    #[test]
    fn an_unrolled_stretch_is_read_only_while_it_fits_the_budget_newest_first() {
        const H: i64 = HOUR_NS;
        // Marked: hours 0, 2, 3 and 30 minutes of hour 5 (a 30-minute tail to now at 5:30
        // + 30 minutes); spans in every minute of hours 0..6.
        let mut r = Rolled::default();
        for m in (0..60).chain(120..240).chain(300..330) {
            r.minutes.insert(
                m * M,
                MinuteMarker {
                    minute: (m * 60) as u32,
                    computed_at: 1,
                    spans: 1,
                    ..Default::default()
                },
            );
        }
        r.spans = (0..360).map(|m| (m * M, 1)).collect();
        for h in [0, 2, 3] {
            r.hours.insert(h * H, 60);
        }
        let win = w(0, 6 * H);
        let c = r.coverage(win);
        assert_eq!(c.live_lo, 330 * M);
        // Tail (30 min) and hole 4:00-5:00 (60 min) do not both fit the hour: the tail is
        // read, the hole left out, and so is the older hole 1:00-2:00 (budget spent).
        assert_eq!(c.live, vec![(330 * M, 6 * H)]);
        assert_eq!(c.uncovered, vec![(H, 2 * H), (4 * H, 5 * H)]);
        assert_eq!(c.hours, vec![0, 7200, 10800]);
        assert_eq!(r.uncovered_spans(&c), 120);
        // A bigger budget reads both holes.
        r.max_unrolled = 3 * H;
        let c = r.coverage(win);
        assert_eq!(c.live, vec![(H, 2 * H), (4 * H, 5 * H), (330 * M, 6 * H)]);
        assert!(c.uncovered.is_empty());
        // Minutes without spans are no hole: nothing to read, nothing left out.
        r.max_unrolled = DEFAULT_MAX_UNROLLED_NS;
        for m in (60..120).chain(240..300) {
            r.spans.remove(&(m * M));
        }
        let c = r.coverage(win);
        assert_eq!(c.live, vec![(330 * M, 6 * H)]);
        assert!(c.uncovered.is_empty());
        // An old window nothing of which is marked: its newest hour is read, the rest left out.
        let mut old = Rolled {
            spans: (0..600).map(|m| (m * M, 1)).collect(),
            ..Default::default()
        };
        let c = old.coverage(Window {
            lo: 0,
            hi: 10 * H,
            now: 100 * H,
        });
        assert_eq!(c.live, vec![(9 * H, 10 * H)]);
        assert_eq!(c.uncovered, vec![(0, 9 * H)]);
        assert_eq!(old.uncovered_spans(&c), 540);
        // Past the call copy's life nothing is read from spans, whatever the budget.
        old.readable_from = 9 * H + 30 * M;
        let c = old.coverage(Window {
            lo: 0,
            hi: 10 * H,
            now: 100 * H,
        });
        assert_eq!(c.live, vec![(9 * H + 30 * M, 10 * H)]);
        assert_eq!(c.uncovered, vec![(0, 9 * H + 30 * M)]);
        old.readable_from = 10 * H;
        let c = old.coverage(Window {
            lo: 0,
            hi: 10 * H,
            now: 100 * H,
        });
        assert!(c.live.is_empty());
        assert_eq!(c.uncovered, vec![(0, 10 * H)]);
    }

    #[test]
    fn whole_hours_are_read_from_hourly_rows_and_bound_the_minute_scan_to_the_ragged_ends() {
        const H: i64 = HOUR_NS;
        // A window 0:30–6:10: minutes of hour 0 (from 0:30) and of 5:00–6:10 read one by one,
        // hours 1–4 summed up (whole and current), 10 spans a minute, 2 late in hour 3.
        let mut r = Rolled::default();
        for m in (30..60).chain(300..365) {
            r.minutes.insert(
                m * M,
                MinuteMarker {
                    minute: (m * 60) as u32,
                    computed_at: 1,
                    spans: 10,
                    ..Default::default()
                },
            );
            r.spans.insert(m * M, 10);
        }
        for h in 1..5 {
            r.summarized.insert(
                h * H,
                HourSum {
                    version: 60 * 7,
                    spans: 600,
                    late: if h == 3 { 2 } else { 0 },
                },
            );
            r.hours.insert(h * H, 60 * 7);
        }
        r.hours.insert(5 * H, 60);
        let win = w(30 * M, 370 * M);
        let c = r.coverage(win);
        assert_eq!(c.hours, vec![3600, 7200, 10800, 14400, 18000]);
        assert_eq!(c.live_lo, 365 * M);
        assert_eq!(c.live, vec![(365 * M, 370 * M)]);
        // Minute rows only at the ragged ends, never across the whole hours.
        assert_eq!(c.minute_bounds, vec![(30 * M, H), (6 * H, 365 * M)]);
        assert_eq!(
            r.quality(win),
            QualityAgg {
                spans: 4 * 600 + 95 * 10,
                late: 2
            }
        );
        // A summed-up hour keys its version whole; a changed hour version drops it from the
        // hours read (its minutes would be read from minute rows, within the bounds).
        assert_eq!(r.minutes_version(2 * H), (60 * 7, 60));
        r.hours.insert(2 * H, 1);
        let c = r.coverage(win);
        assert_eq!(c.hours, vec![3600, 10800, 14400, 18000]);
        assert_eq!(
            c.minute_bounds,
            vec![(30 * M, H), (2 * H, 3 * H), (6 * H, 365 * M)]
        );
    }
}
