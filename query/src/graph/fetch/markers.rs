//! The rollup markers as read from ClickHouse: what the rollup job recorded for each minute,
//! hour and 10-second slot, and the span counts counted on insert — the facts every coverage
//! decision ([`super::coverage`]) is made from. Two reads: [`Rolled::read`], every minute of a
//! range (the rollup job, which recomputes minutes one by one), and [`Rolled::read_window`],
//! a graph's read, which summarises the hours that are wholly rolled up and current in one
//! row each and reads minute markers only for the rest (the ragged edges, hours with late
//! spans), so a month-long window costs ~hours, not ~minutes.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

mod ranges;
mod slots;
mod statement;
pub use ranges::{
    Ends, MAX_BOUNDS, bind_bounds, bind_ranges, bounds_sql, cover_ranges, ranges_sql, unit_runs,
};
use ranges::{ragged_ends, subtract};
pub use slots::{SlotMark, read_slots};
use statement::{MarkRow, WindowReads, in_ranges, minute_markers, per_minute_rows};

pub const MINUTE_NS: i64 = 60_000_000_000;
pub const HOUR_NS: i64 = 60 * MINUTE_NS;
/// A UTC day in seconds (day rollups, schema v13).
pub const DAY_S: u32 = 86_400;
pub const DAY_NS: i64 = 24 * HOUR_NS;
/// The finer grain between rolled-up minutes and spans (schema v10).
pub const SLOT_NS: i64 = 10_000_000_000;
/// A slot is rolled up this long after it ends: the graph's 5 s grace for a client span to
/// find its child, and as long again for stragglers.
pub const SLOT_DELAY_NS: i64 = 10_000_000_000;
/// Slots are read only this close to a window's end (they only bridge the last minutes).
const SLOT_READ_NS: i64 = 5 * MINUTE_NS;
/// The longest marker read (whole hours, the window and its baseline rounded out) taken minute
/// by minute ([`WindowReads::per_minute`]): 50 hours, the 24 h graph with its baseline — at
/// most ~1,500 markers (minute markers live 25 h, schema v14) and 3,120 counts.
const PER_MINUTE_READ_NS: i64 = 50 * HOUR_NS;

/// One row of `orrery_graph_minutes`, as the rollup writes it and readers read each minute's
/// latest (the one marker type of the project).
#[derive(Row, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteMarker {
    /// Unix seconds.
    #[serde(rename = "Minute")]
    pub minute: u32,
    #[serde(rename = "ComputedAt")]
    pub computed_at: u64,
    /// Spans the minute had (counted on insert) when this computation started.
    #[serde(rename = "Spans")]
    pub spans: u64,
    #[serde(rename = "Orphans")]
    pub orphans: u64,
    #[serde(rename = "Unmatched")]
    pub unmatched: u64,
    /// Spans that arrived after the minute had been rolled up, over all its computations.
    #[serde(rename = "Late")]
    pub late: u64,
}

/// Hour markers and span counts, read beside the minute markers.
#[derive(Row, Deserialize)]
struct CountRow {
    level: u8,
    at: u32,
    value: u64,
}

/// A whole hour a graph read takes as one unit ([`Rolled::read_window`]): all 60 minutes
/// marked, none with a count changed since its marker, nor in the hours either side (a late
/// span changes its neighbour minutes' calls), and hour rows made from exactly the current
/// computation of each minute. Its minutes are not in [`Rolled::minutes`] / [`Rolled::spans`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourSum {
    /// Sum of the latest `ComputedAt` of its minutes (= its hour marker's `MinutesVersion`).
    pub version: u64,
    /// Spans (counted on insert, equal to what its minute markers saw).
    pub spans: u64,
    /// Late spans its minute markers recorded.
    pub late: u64,
}

/// The rollup markers of a time range: each marked minute's latest marker, each hour's latest
/// `MinutesVersion`, and the span count of every minute (counted on insert), all keyed by ns —
/// or, for a graph read, whole current hours summed up ([`HourSum`]) and minutes only for the
/// rest. Read once per graph and per rollup run; every decision — what a graph reads from
/// rollups, its data quality, what the rollup recomputes — is made from it
/// ([`super::coverage`]).
#[derive(Debug, Clone)]
pub struct Rolled {
    pub minutes: BTreeMap<i64, MinuteMarker>,
    /// Hours taken whole (graph reads only, see [`HourSum`]): their minutes are in neither
    /// `minutes` nor `spans`.
    pub summarized: BTreeMap<i64, HourSum>,
    pub hours: BTreeMap<i64, u64>,
    /// Each whole UTC day's latest marker (graph reads only): its `HoursVersion`, the sum of
    /// the hour markers' versions its day rows were merged from (schema v13, see
    /// [`super::coverage`]'s `whole_days`).
    pub days: BTreeMap<i64, u64>,
    /// Each whole UTC day's marker's span count (schema v15): the spans of the day and the
    /// hour either side its rows were made from (absent for markers written before v15).
    pub day_spans: BTreeMap<i64, u64>,
    /// Days taken whole by their marker's count (graph reads only, see
    /// [`Rolled::day_quiet`]): their hours are in `summarized`, decided without their hour
    /// markers' rule.
    pub days_by_count: std::collections::BTreeSet<i64>,
    /// Span count now (counted on insert) of every hour of the read and the hour either side
    /// (graph reads only): what a day's count is summed from ([`Rolled::day_count`]).
    pub hour_counts: BTreeMap<i64, u64>,
    /// Each hour marker's span count (schema v14: what its minutes' markers saw; absent for
    /// markers written before it). An hour older than `orrery_store::schema::minutes_from` — whose minutes
    /// may be gone — is judged by it (see [`Rolled::hour_quiet`]).
    pub hour_spans: BTreeMap<i64, u64>,
    pub spans: BTreeMap<i64, u64>,
    /// Slot markers and counts of the last minutes before the range's end.
    pub slots: BTreeMap<i64, SlotMark>,
    pub slot_spans: BTreeMap<i64, u64>,
    /// How much of a window (ns) a read takes from spans where nothing is rolled up
    /// (`--graph-max-unrolled`); the rest is left out and reported (see [`super::coverage_of`]).
    pub max_unrolled: i64,
    /// Unrolled data before this (ns) is never read from spans, only left out: the call copy
    /// the live reads use keeps ~2 days (schema v11), so older data is only in rollups (the
    /// graph sets it to the minute rollup's horizon; `i64::MIN`: no such bound).
    pub readable_from: i64,
    /// A live window ends at the settled frontier ([`Rolled::settled_through`]): the graph's
    /// own reads set it (unless `--graph-live-edge-from-spans`); detail reads and unit tests
    /// leave it off and read to now.
    pub ends_settled: bool,
}

/// `--graph-max-unrolled`'s default: an hour of spans at most is joined per window.
pub const DEFAULT_MAX_UNROLLED_NS: i64 = HOUR_NS;

impl Default for Rolled {
    fn default() -> Self {
        Rolled {
            minutes: BTreeMap::new(),
            summarized: BTreeMap::new(),
            hours: BTreeMap::new(),
            days: BTreeMap::new(),
            day_spans: BTreeMap::new(),
            days_by_count: Default::default(),
            hour_counts: BTreeMap::new(),
            hour_spans: BTreeMap::new(),
            spans: BTreeMap::new(),
            slots: BTreeMap::new(),
            slot_spans: BTreeMap::new(),
            max_unrolled: DEFAULT_MAX_UNROLLED_NS,
            readable_from: i64::MIN,
            ends_settled: false,
        }
    }
}

impl Rolled {
    /// Every minute marker, hour marker and span count of `[lo, hi)`: what the rollup job
    /// decides by.
    pub async fn read(client: &Client, lo: i64, hi: i64) -> Result<Rolled> {
        let markers = async {
            client
                .query(
                    "SELECT Minute, m.1 AS ComputedAt, m.2 AS Spans, m.3 AS Orphans,
    m.4 AS Unmatched, m.5 AS Late
FROM (
    SELECT Minute, argMax((ComputedAt, Spans, Orphans, Unmatched, Late), ComputedAt) AS m
    FROM orrery_graph_minutes
    WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
      AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
    GROUP BY Minute
)",
                )
                .param("lo", lo)
                .param("hi", hi)
                .fetch_all::<MinuteMarker>()
                .await
                .context("reading rollup markers")
        };
        let counts = async {
            client
                .query(
                    "SELECT 1 AS level, toUInt32(Hour) AS at,
    argMax(MinutesVersion, ComputedAt) AS value
FROM orrery_graph_hours
WHERE Hour >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Hour < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Hour
UNION ALL
SELECT 3 AS level, toUInt32(Hour) AS at, toUInt64(argMax(Spans, ComputedAt) + 1) AS value
FROM orrery_graph_hours
WHERE Hour >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Hour < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Hour
UNION ALL
SELECT 2 AS level, toUInt32(Minute) AS at, sum(Spans) AS value
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Minute",
                )
                .param("lo", lo)
                .param("hi", hi)
                .fetch_all::<CountRow>()
                .await
                .context("reading rollup hour markers and span counts")
        };
        let slots = read_slots(client, lo.max(hi - SLOT_READ_NS), hi);
        let (markers, counts, (slots, slot_spans)) = tokio::try_join!(markers, counts, slots)?;
        let mut out = Rolled {
            slots,
            slot_spans,
            ..Default::default()
        };
        for m in markers {
            out.minutes.insert(m.minute as i64 * 1_000_000_000, m);
        }
        for r in counts {
            let at = r.at as i64 * 1_000_000_000;
            match r.level {
                1 => {
                    out.hours.insert(at, r.value);
                }
                // `Spans + 1`: 0 for a marker written before schema v14 (no count).
                3 => {
                    if r.value > 0 {
                        out.hour_spans.insert(at, r.value - 1);
                    }
                }
                _ => {
                    out.spans.insert(at, r.value);
                }
            }
        }
        Ok(out)
    }

    /// An hour whose marker's span count (schema v14) equals its span count now (summed from
    /// [`Rolled::spans`], per minute or per hour), or with neither marker nor spans: nothing
    /// arrived since it was merged. What judges an hour whose minutes are gone.
    pub fn hour_quiet(&self, h: i64) -> bool {
        let now: u64 = self.spans.range(h..h + HOUR_NS).map(|(_, n)| n).sum();
        match self.hour_spans.get(&h) {
            Some(&seen) => seen == now,
            None => now == 0 && !self.hours.contains_key(&h),
        }
    }

    /// Spans counted now in the day `d` (ns) and the hour either side, from
    /// [`Rolled::hour_counts`]: what its day marker's `Spans` is compared with.
    pub fn day_count(&self, d: i64) -> u64 {
        self.hour_counts
            .range(d - HOUR_NS..d + DAY_NS + HOUR_NS)
            .map(|(_, n)| n)
            .sum()
    }

    /// A day (ns) whose marker's span count (schema v15) equals [`Rolled::day_count`]: no span
    /// was stored in it or in the hour either side since its rows were merged (a count only
    /// grows, and the day rollup records the counts its 26 hours were verified quiet at), so
    /// its day rows are what merging its current hours would give — no hour marker needed. A
    /// late span there, even one hour outside it (it changes the day's first or last minute's
    /// calls), makes it fall back to the hour rule until the day is merged again.
    pub fn day_quiet(&self, d: i64) -> bool {
        self.day_spans.get(&d) == Some(&self.day_count(d))
    }

    /// A graph's read of `[lo, hi)`: first, per hour, the sums of its latest minute markers
    /// and of its span counts (one row per hour, summed in ClickHouse) and the hour markers;
    /// hours that are whole and current by those ([`HourSum`]) are kept as one unit each, and
    /// only the rest — the window's ragged ends, the hours around late spans, hours not rolled
    /// up — are then read minute by minute. A minute's count only grows, so an hour whose
    /// counts add up to what its markers saw has every minute current: the exactness rule
    /// holds per hour without reading its minutes.
    pub async fn read_window(client: &Client, lo: i64, hi: i64) -> Result<Rolled> {
        let first = lo.div_euclid(HOUR_NS) * HOUR_NS;
        let end = (hi + HOUR_NS - 1).div_euclid(HOUR_NS) * HOUR_NS;
        // The window's ragged ends can never be whole hours: their minutes are read with the
        // hour sums, so a short window (the common 15 min / 1 h graph) needs no second round.
        let ends = ragged_ends(lo, hi);
        let reads = WindowReads::of(lo, hi, !ends.is_empty(), crate::now_ns());
        // A window holding a whole UTC day reads its day markers and the counts first, and the
        // hours' sums and markers only outside the days their count decides (a month's minute
        // markers summed per hour were most of a 30-day read); any other window reads all of
        // it in one statement: each costs the engine a fixed ~5–10 ms on 2 cores (the hour
        // sums, the slots and the ends were three, ~28 ms on the 10M-span bench).
        // (Two whole days at least: the 24 h graph's read with its baseline holds one, and
        // where no day is rolled up the second round would only cost its fixed price.)
        let first_day = (lo + DAY_NS - 1).div_euclid(DAY_NS) * DAY_NS;
        let days_first = reads.days && first_day + 2 * DAY_NS <= hi;
        // A read of up to two days (the 15-minute, 1 h and 24 h graphs with their baselines)
        // takes every minute's marker and count, a few thousand rows at most, in two branches
        // instead of four — and then never needs a second round: an hour not taken whole
        // (a young install's first, partly marked hour; an hour just ended whose hour marker
        // is not written yet; late spans) is answered from those rows.
        let per_minute = !days_first && end - first <= PER_MINUTE_READ_NS;
        let first_round = if days_first {
            reads.days_first()
        } else if per_minute {
            reads.per_minute()
        } else {
            reads
        };
        let q = client
            .query(&first_round.sql())
            .param("lo", first)
            .param("hi", end)
            .param("clo", first - HOUR_NS)
            .param("chi", end + HOUR_NS)
            .param("slo", lo.max(hi - SLOT_READ_NS))
            .param("shi", hi)
            .param("skip", Vec::<u32>::new());
        // The hours outside some whole days: their sums and markers (the second round).
        let outside_of = |days: &mut dyn Iterator<Item = i64>| {
            let mut outside: Vec<(i64, i64)> = Vec::new();
            let mut at = first;
            for d in days {
                if d > at {
                    outside.push((at, d));
                }
                at = d + DAY_NS;
            }
            if end > at {
                outside.push((at, end));
            }
            outside
        };
        let hours_outside = |outside: Vec<(i64, i64)>| async move {
            if outside.is_empty() {
                return Ok(Vec::new());
            }
            let q = client
                .query(&WindowReads::HOURS_OUTSIDE.sql())
                .param("lo", first)
                .param("hi", end);
            bind_bounds(q, &cover_ranges(&outside))
                .fetch_all::<MarkRow>()
                .await
                .context("reading rollup markers per hour")
        };
        // The second round is sent with the first, for the usual outcome: every whole day
        // of the window taken by its count (a day with late spans is the exception). Its
        // bounds are then exactly those the first round's answer asks for, so the month's
        // marker read costs one round trip instead of two; when they differ it is sent again
        // with the right ones (the guess cost one statement for nothing).
        let every_day = || {
            (first_day..hi)
                .step_by(DAY_NS as usize)
                .filter(move |d| d + DAY_NS <= hi)
        };
        let guess = outside_of(&mut every_day());
        let first_rows = async {
            bind_bounds(q, &ends)
                .fetch_all::<MarkRow>()
                .await
                .context("reading rollup markers per hour")
        };
        let (mut rows, guessed) = if days_first {
            tokio::try_join!(first_rows, hours_outside(guess.clone()))?
        } else {
            (first_rows.await?, Vec::new())
        };
        let every_minute = if per_minute {
            let (derived, every) = per_minute_rows(rows, &ends);
            rows = derived;
            every
        } else {
            Vec::new()
        };
        let mut out = Rolled::default();
        // The days taken whole by their count, from the first round's day markers and counts.
        if reads.days {
            for r in rows.iter().filter(|r| r.level == 4 && r.spans > 0) {
                out.day_spans
                    .insert(r.at as i64 * 1_000_000_000, r.spans - 1);
            }
            out.hour_counts = rows
                .iter()
                .filter(|r| r.level == 2)
                .map(|r| (r.at as i64 * 1_000_000_000, r.spans))
                .collect();
            for d in (first_day..hi).step_by(DAY_NS as usize) {
                if d + DAY_NS <= hi && out.day_quiet(d) {
                    out.days_by_count.insert(d);
                }
            }
        }
        if days_first {
            // The rest of the hours: their sums and markers.
            let outside = outside_of(&mut out.days_by_count.iter().copied());
            if outside == guess {
                rows.extend(guessed);
            } else {
                rows.extend(hours_outside(outside).await?);
            }
        }
        let mut marks: BTreeMap<i64, MarkRow> = BTreeMap::new();
        let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
        let mut early = Vec::new();
        for r in rows {
            let at = r.at as i64 * 1_000_000_000;
            match r.level {
                1 => {
                    marks.insert(at, r);
                }
                2 => {
                    counts.insert(at, r.spans);
                }
                3 => {
                    out.hours.insert(at, r.version);
                    // `Spans + 1`: 0 for a marker written before schema v14 (no count).
                    if r.spans > 0 {
                        out.hour_spans.insert(at, r.spans - 1);
                    }
                }
                4 => {
                    out.days.insert(at, r.version);
                    // `Spans + 1`: 0 for a marker written before schema v15 (no count).
                    if r.spans > 0 {
                        out.day_spans.insert(at, r.spans - 1);
                    }
                }
                5 => {
                    let mark = SlotMark {
                        at: r.at,
                        computed_at: r.version,
                        spans: r.spans,
                    };
                    out.slots.insert(at, mark);
                }
                6 => {
                    out.slot_spans.insert(at, r.spans);
                }
                _ => early.push(r),
            }
        }
        // Hours before `cut` may have lost their minutes (schema v14 keeps them ~a day): they
        // are judged by their hour marker's span count instead.
        let cut = orrery_store::schema::minutes_from(crate::now_ns());
        // The counts an hour beyond the read are only for the days' counts; an hour's neighbour
        // outside it is judged as before (the day rule covers the days' edges).
        out.hour_counts = counts;
        out.spans = out
            .hour_counts
            .range(first..end)
            .map(|(h, n)| (*h, *n))
            .collect();
        // Counts equal to what the markers saw (an hour with neither is quiet too); every hour
        // of a day taken whole by its count is quiet (its sums and markers were not read).
        let by_count = out.days_by_count.clone();
        let in_whole_day = move |h: i64| by_count.contains(&(h.div_euclid(DAY_NS) * DAY_NS));
        let quiet = |out: &Rolled, h: i64| {
            in_whole_day(h)
                || marks.get(&h).map_or(0, |m| m.spans) == out.spans.get(&h).copied().unwrap_or(0)
                || (h < cut && out.hour_quiet(h))
        };
        let mut whole_hours = Vec::new();
        for h in (first..end).step_by(HOUR_NS as usize) {
            if h < lo || h + HOUR_NS > hi {
                continue;
            }
            let neighbours = quiet(&out, h - HOUR_NS) && quiet(&out, h + HOUR_NS);
            let by_minutes = marks.get(&h).filter(|m| {
                m.marked == 60 && quiet(&out, h) && out.hours.get(&h) == Some(&m.version)
            });
            let sum = match by_minutes {
                Some(m) => Some(HourSum {
                    version: m.version,
                    spans: m.spans,
                    late: m.late,
                }),
                // Its late spans were counted by its minutes' markers, gone with them.
                None if h + HOUR_NS <= cut && out.hour_quiet(h) && out.hours.contains_key(&h) => {
                    Some(HourSum {
                        version: out.hours[&h],
                        spans: out.hour_spans[&h],
                        late: 0,
                    })
                }
                None => None,
            };
            if let Some(sum) = sum
                && neighbours
            {
                whole_hours.push((h, sum));
            }
        }
        // The hours of the days taken whole by their count are whole, whatever their own
        // markers say (not read: the day rows are). Keyed by their day marker's version, which
        // a re-merged hour changes (were one read from hourly rows: see `fetch::rolled_versions`).
        for &d in &out.days_by_count {
            let day_version = out.days.get(&d).copied().unwrap_or(0);
            for h in (d..d + DAY_NS).step_by(HOUR_NS as usize) {
                if whole_hours.iter().any(|(w, _)| *w == h) {
                    continue;
                }
                let version = *out.hours.entry(h).or_insert(day_version);
                whole_hours.push((
                    h,
                    HourSum {
                        version,
                        spans: out.spans.get(&h).copied().unwrap_or(0),
                        late: marks.get(&h).map_or(0, |m| m.late),
                    },
                ));
            }
        }
        out.spans = BTreeMap::new();
        out.summarized.extend(whole_hours);
        // Everything else, minute by minute (what the ends did not already bring).
        let mut rest: Vec<(i64, i64)> = Vec::new();
        let mut at = lo;
        for &h in out.summarized.keys() {
            if h > at {
                rest.push((at, h));
            }
            at = h + HOUR_NS;
        }
        if hi > at {
            rest.push((at, hi));
        }
        let skip: Vec<u32> = out
            .summarized
            .keys()
            .map(|h| (h / 1_000_000_000) as u32)
            .collect();
        // Hours with neither a minute marker (no per-hour sum) nor a span count: their minute
        // read would find nothing — levels 7 and 8 come from the tables levels 1 and 2 summed,
        // and every hour left here had those read — so it is not sent. A window reaching back
        // before the data (a young install's baseline, the start of the retention) otherwise
        // paid a second round for its empty hours: the 10M-span bench's 24 h graph did, for
        // the empty day its baseline covers.
        let empty = empty_hours(first, end, |h| {
            !marks.contains_key(&h) && !out.hour_counts.contains_key(&h)
        });
        let rest = subtract(&subtract(&rest, &ends), &empty);
        let late = if rest.is_empty() {
            Vec::new()
        } else if per_minute {
            // Every minute was read: the round's rows without a statement.
            let ranges = cover_ranges(&rest);
            every_minute
                .into_iter()
                .filter(|r| in_ranges(r.at, &ranges) && !skip.contains(&(r.at - r.at % 3_600)))
                .collect()
        } else {
            minute_markers(client, &cover_ranges(&rest), &skip).await?
        };
        let summed = |t: i64| {
            out.summarized
                .contains_key(&(t.div_euclid(HOUR_NS) * HOUR_NS))
        };
        let (mut minutes, mut spans) = (BTreeMap::new(), BTreeMap::new());
        for r in early.into_iter().chain(late) {
            let at = r.at as i64 * 1_000_000_000;
            if r.level == 7 {
                minutes.insert(at, r.minute_marker());
            } else {
                spans.insert(at, r.spans);
            }
        }
        // An end read early whose hour turned out whole stays summed up, never counted twice.
        minutes.retain(|&t, _| !summed(t));
        spans.retain(|&t, _| !summed(t));
        out.minutes = minutes;
        out.spans = spans;
        Ok(out)
    }
}

/// The hours of `[first, end)` (whole hours) that `empty` says hold nothing, as ranges.
fn empty_hours(first: i64, end: i64, empty: impl Fn(i64) -> bool) -> Vec<(i64, i64)> {
    (first..end)
        .step_by(HOUR_NS as usize)
        .filter(|&h| empty(h))
        .map(|h| (h, h + HOUR_NS))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hours_with_neither_markers_nor_counts_are_left_unread() {
        let h = 1_000 * HOUR_NS;
        let (marked, counted) = ([h + HOUR_NS], [h + 2 * HOUR_NS]);
        let empty = empty_hours(h, h + 4 * HOUR_NS, |x| {
            !marked.contains(&x) && !counted.contains(&x)
        });
        assert_eq!(
            empty,
            vec![(h, h + HOUR_NS), (h + 3 * HOUR_NS, h + 4 * HOUR_NS)]
        );
        // What is left of a minute read over the four hours: the marked and the counted hour.
        assert_eq!(
            subtract(&[(h + 30 * 60_000_000_000, h + 4 * HOUR_NS)], &empty),
            vec![(h + HOUR_NS, h + 3 * HOUR_NS)]
        );
    }

    #[test]
    fn a_day_is_quiet_only_while_nothing_arrived_in_it_or_an_hour_either_side() {
        let d = 20_000 * DAY_NS;
        let mut r = Rolled::default();
        for k in -3..28 {
            r.hour_counts.insert(d + k * HOUR_NS, 10);
        }
        // No count on the marker (written before schema v15): never quiet by count.
        assert!(!r.day_quiet(d));
        r.day_spans.insert(d, 26 * 10);
        assert!(r.day_quiet(d));
        // Two hours before or after: not the day's business.
        r.hour_counts.insert(d - 2 * HOUR_NS, 11);
        r.hour_counts.insert(d + DAY_NS + HOUR_NS, 11);
        assert!(r.day_quiet(d));
        // A span in the hour before, in the hour after, or inside: not quiet.
        for at in [d - HOUR_NS, d + DAY_NS, d + 7 * HOUR_NS] {
            let mut late = r.clone();
            *late.hour_counts.get_mut(&at).unwrap() += 1;
            assert!(!late.day_quiet(d), "{at}");
        }
        // A whole hour missing from the count (its spans gone, or never counted) is not quiet.
        let mut gone = r.clone();
        gone.hour_counts.remove(&(d + 3 * HOUR_NS));
        assert!(!gone.day_quiet(d));
    }
}
