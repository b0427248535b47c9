//! The one statement a graph's marker read ([`Rolled::read_window`]) sends per round: every
//! marker and span count a window needs — per-hour sums of its minute markers and span
//! counts, hour and day markers, the slots at its end, the minutes of its ragged ends — as
//! branches of one `UNION ALL`, each row tagged with its `level`. Each statement costs the
//! engine a fixed ~5–10 ms on 2 cores, so the three concurrent statements this replaced cost
//! the 1 h graph more than one does; and a branch costs its planning even when it reads
//! nothing, so a window gets only the branches it needs ([`WindowReads::of`]).
//!
//! [`Rolled::read_window`]: super::Rolled::read_window

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{HOUR_NS, MinuteMarker, bind_bounds, bounds_sql};

/// One row of a graph's marker read, by `level` (`at`: the hour, day, slot or minute, Unix
/// seconds): 1 an hour's sums of its latest minute markers (`marked` of them, `version` the sum
/// of their `ComputedAt`, `spans`, `late`); 2 an hour's span count (counted on insert); 3 an
/// hour marker (`version` its `MinutesVersion`, `spans` its `Spans + 1`: 0 for a marker written
/// before schema v14); 4 a day marker (`version` its `HoursVersion`, `spans` its `Spans + 1`: 0
/// for a marker written before schema v15); 5 a slot's latest marker
/// (`version` its `ComputedAt`, `spans`); 6 a slot's span count; 7 a minute's latest marker
/// (`version` its `ComputedAt`, and its counts); 8 a minute's span count.
#[derive(Row, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct MarkRow {
    pub(super) level: u8,
    pub(super) at: u32,
    pub(super) marked: u64,
    pub(super) version: u64,
    pub(super) spans: u64,
    pub(super) orphans: u64,
    pub(super) unmatched: u64,
    pub(super) late: u64,
}

/// `[{lo}, {hi})` on `{col}` (the window rounded out to whole hours).
const WITHIN: &str = ">= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
      AND {col} < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))";

/// Levels 1–4 (per hour and per day, over `{lo}`–`{hi}`; the span counts over `{clo}`–`{chi}`,
/// an hour more each side: a day's count takes in the hour either side, see
/// `Rolled::day_count`).
const HOUR_SUMS_SQL: &str =
    "SELECT toUInt8(1) AS level, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600) AS at,
    count() AS marked, sum(c) AS version, sum(s) AS spans, toUInt64(0) AS orphans,
    toUInt64(0) AS unmatched, sum(l) AS late
FROM (
    SELECT Minute, max(ComputedAt) AS c, argMax(Spans, ComputedAt) AS s,
        argMax(Late, ComputedAt) AS l
    FROM orrery_graph_minutes
    WHERE Minute {within:Minute}
    GROUP BY Minute
)
GROUP BY at";
const HOUR_COUNTS_SQL: &str =
    "SELECT toUInt8(2) AS level, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600) AS at,
    toUInt64(0) AS marked, toUInt64(0) AS version, toUInt64(sum(Spans)) AS spans,
    toUInt64(0) AS orphans, toUInt64(0) AS unmatched, toUInt64(0) AS late
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({clo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({chi:Int64}))
GROUP BY at";
const HOUR_MARKERS_SQL: &str =
    "SELECT toUInt8(3) AS level, toUInt32(Hour) AS at, toUInt64(0) AS marked,
    toUInt64(argMax(MinutesVersion, ComputedAt)) AS version,
    toUInt64(argMax(Spans, ComputedAt) + 1) AS spans, toUInt64(0) AS orphans,
    toUInt64(0) AS unmatched, toUInt64(0) AS late
FROM orrery_graph_hours
WHERE Hour {within:Hour}
GROUP BY Hour";
const DAY_MARKERS_SQL: &str =
    "SELECT toUInt8(4) AS level, toUInt32(Day) AS at, toUInt64(0) AS marked,
    toUInt64(argMax(HoursVersion, ComputedAt)) AS version,
    toUInt64(argMax(Spans, ComputedAt) + 1) AS spans, toUInt64(0) AS orphans,
    toUInt64(0) AS unmatched, toUInt64(0) AS late
FROM orrery_graph_days
WHERE Day {within:Day}
GROUP BY Day";
/// Levels 5–6: the slots of `{slo}`–`{shi}`.
const SLOTS_SQL: &str = "SELECT toUInt8(5) AS level, toUInt32(Slot) AS at, toUInt64(0) AS marked,
    toUInt64(max(ComputedAt)) AS version, toUInt64(argMax(Spans, ComputedAt)) AS spans,
    toUInt64(0) AS orphans, toUInt64(0) AS unmatched, toUInt64(0) AS late
FROM orrery_graph_slots
WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({slo:Int64}))
  AND Slot < toDateTime(fromUnixTimestamp64Nano({shi:Int64}))
GROUP BY Slot
UNION ALL
SELECT toUInt8(6) AS level, toUInt32(Slot) AS at, toUInt64(0) AS marked, toUInt64(0) AS version,
    toUInt64(sum(Spans)) AS spans, toUInt64(0) AS orphans, toUInt64(0) AS unmatched,
    toUInt64(0) AS late
FROM orrery_span_slots
WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({slo:Int64}))
  AND Slot < toDateTime(fromUnixTimestamp64Nano({shi:Int64}))
GROUP BY Slot";

/// Levels 7–8 for every minute of a short read: the latest marker of each minute of `{lo}`–`{hi}`
/// and the span count of each minute of `{clo}`–`{chi}`, plain ranges (no bounds, no skipped
/// hours): [`per_minute_rows`] derives levels 1–2 and the ends' minutes from them.
const PER_MINUTE_SQL: &str =
    "SELECT toUInt8(7) AS level, toUInt32(Minute) AS at, toUInt64(0) AS marked,
    m.1 AS version, m.2 AS spans, m.3 AS orphans, m.4 AS unmatched, m.5 AS late
FROM (
    SELECT Minute, argMax((ComputedAt, Spans, Orphans, Unmatched, Late), ComputedAt) AS m
    FROM orrery_graph_minutes
    WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
      AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
    GROUP BY Minute
)
UNION ALL
SELECT toUInt8(8) AS level, toUInt32(Minute) AS at, toUInt64(0) AS marked, toUInt64(0) AS version,
    toUInt64(sum(Spans)) AS spans, toUInt64(0) AS orphans, toUInt64(0) AS unmatched,
    toUInt64(0) AS late
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({clo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({chi:Int64}))
GROUP BY Minute";

/// Levels 7–8: the latest marker and the span count of every minute within the bounds
/// ([`bind_bounds`]) outside the hours in `{skip}`.
fn minutes_sql() -> String {
    let skip = "NOT has({skip:Array(UInt32)}, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600))";
    let bounds = bounds_sql("Minute");
    format!(
        "SELECT toUInt8(7) AS level, toUInt32(Minute) AS at, toUInt64(0) AS marked, m.1 AS version,
    m.2 AS spans, m.3 AS orphans, m.4 AS unmatched, m.5 AS late
FROM (
    SELECT Minute, argMax((ComputedAt, Spans, Orphans, Unmatched, Late), ComputedAt) AS m
    FROM orrery_graph_minutes
    WHERE ({bounds}) AND {skip}
    GROUP BY Minute
)
UNION ALL
SELECT toUInt8(8) AS level, toUInt32(Minute) AS at, toUInt64(0) AS marked, toUInt64(0) AS version,
    toUInt64(sum(Spans)) AS spans, toUInt64(0) AS orphans, toUInt64(0) AS unmatched,
    toUInt64(0) AS late
FROM orrery_span_minutes
WHERE ({bounds}) AND {skip}
GROUP BY Minute"
    )
}

/// Slot rows are kept two hours (schema v12), their markers one: a window ending before
/// that has none to read (and reading its tail from spans instead would be exact anyway).
const SLOTS_KEPT_NS: i64 = 2 * HOUR_NS;

/// Which of [`MarkRow`]'s branches one marker statement has: a window's first round has the
/// per-hour sums and counts, the hour and day markers only when it holds a whole hour or UTC
/// day (a branch costs its planning even when it reads nothing; no whole hour or day, nothing
/// is taken whole), the slots only when it ends within their two hours, and the minutes of its
/// ragged ends; its second round only minutes. A window holding a whole day reads its day
/// markers and counts first ([`WindowReads::days_first`]) and the hours' sums and markers
/// only outside the days those decide ([`WindowReads::HOURS_OUTSIDE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WindowReads {
    /// The per-hour sums of minute markers (level 1).
    pub(super) sums: bool,
    /// The per-hour span counts (level 2).
    pub(super) counts: bool,
    /// The sums and the hour markers only within the bounds ([`bind_bounds`]): the hours
    /// outside the days taken whole by their count.
    pub(super) only: bool,
    pub(super) hours: bool,
    pub(super) days: bool,
    pub(super) slots: bool,
    pub(super) minutes: bool,
    /// Every minute's marker and count instead of the per-hour sums, counts and the ends'
    /// minutes ([`WindowReads::per_minute`]).
    pub(super) per_minute: bool,
}

impl WindowReads {
    /// The first round for `[lo, hi)` at `now`, with or without ragged ends.
    pub(super) fn of(lo: i64, hi: i64, ends: bool, now: i64) -> Self {
        let day = 24 * HOUR_NS;
        let first_day = (lo + day - 1).div_euclid(day) * day;
        let first_hour = (lo + HOUR_NS - 1).div_euclid(HOUR_NS) * HOUR_NS;
        WindowReads {
            sums: true,
            counts: true,
            only: false,
            hours: first_hour + HOUR_NS <= hi,
            days: first_day + day <= hi,
            slots: hi > now - SLOTS_KEPT_NS,
            minutes: ends,
            per_minute: false,
        }
    }

    /// The first round of a short window (up to two days with its baseline, no
    /// [`WindowReads::days_first`]: the 15-minute, 1 h and 24 h graphs): every minute's marker
    /// and span count in two branches
    /// instead of four (the per-hour sums and counts, the ends' markers and counts), the
    /// hours' sums derived from them here ([`per_minute_rows`]). A branch costs its planning
    /// whatever it reads — the four cost ~35 ms of engine CPU on 2 cores for a 1 h graph's
    /// few hundred minutes, the two ~21 (docs/decisions.md) — and the marker read is on the
    /// critical path of every graph. Any later minute round is then answered from these rows.
    pub(super) fn per_minute(self) -> Self {
        WindowReads {
            sums: false,
            counts: false,
            minutes: false,
            per_minute: true,
            ..self
        }
    }

    /// The first round of a window holding a whole UTC day: its day markers and span counts
    /// (with the slots and ends), not yet the hours' sums and markers. A day whose marker's
    /// count (schema v15) still adds up is taken whole without them: the per-hour sums of a
    /// month of minute markers were most of a 30-day graph's marker read (44k markers on a
    /// freshly backfilled month: its minutes live a day after they are computed).
    pub(super) fn days_first(self) -> Self {
        WindowReads {
            sums: false,
            hours: false,
            ..self
        }
    }

    /// The second round of a window read [`WindowReads::days_first`]: the hours' sums and
    /// markers within the bounds, the hours outside its days taken whole.
    pub(super) const HOURS_OUTSIDE: WindowReads = WindowReads {
        sums: true,
        counts: false,
        only: true,
        hours: true,
        days: false,
        slots: false,
        minutes: false,
        per_minute: false,
    };

    /// The minute markers and counts of some ranges alone (the last round).
    pub(super) const MINUTES: WindowReads = WindowReads {
        sums: false,
        counts: false,
        only: false,
        hours: false,
        days: false,
        slots: false,
        minutes: true,
        per_minute: false,
    };

    /// The statement: its branches joined by `UNION ALL`. Binds `{lo}`, `{hi}` (whole hours),
    /// `{clo}`, `{chi}` (the counts' hours), `{slo}`, `{shi}`, the minute bounds and `{skip}` —
    /// those of the branches it has.
    pub(super) fn sql(self) -> String {
        let within = |sql: &str, col: &str| {
            let mut w = WITHIN.replace("{col}", col);
            if self.only {
                w = format!("{w} AND ({})", bounds_sql(col));
            }
            sql.replace(&format!("{{within:{col}}}"), &w)
        };
        let mut out = Vec::new();
        if self.sums {
            out.push(within(HOUR_SUMS_SQL, "Minute"));
        }
        if self.counts {
            out.push(HOUR_COUNTS_SQL.to_string());
        }
        if self.hours {
            out.push(within(HOUR_MARKERS_SQL, "Hour"));
        }
        if self.days {
            out.push(within(DAY_MARKERS_SQL, "Day"));
        }
        if self.slots {
            out.push(SLOTS_SQL.to_string());
        }
        if self.minutes {
            out.push(minutes_sql());
        }
        if self.per_minute {
            out.push(PER_MINUTE_SQL.to_string());
        }
        out.join("\nUNION ALL\n")
    }
}

/// The latest marker (level 7) and the span count (level 8) of every minute in `ranges` (at
/// most [`super::MAX_BOUNDS`]) outside the hours in `skip`: one statement.
pub(super) async fn minute_markers(
    client: &Client,
    ranges: &[(i64, i64)],
    skip: &[u32],
) -> Result<Vec<MarkRow>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    bind_bounds(client.query(&WindowReads::MINUTES.sql()), ranges)
        .param("skip", skip)
        .fetch_all::<MarkRow>()
        .await
        .context("reading rollup markers and span counts")
}

/// Whether the minute `at` (Unix seconds) lies in one of `ranges` as the bounds' SQL reads it
/// (`Minute >= toDateTime(lo)`, `Minute < toDateTime(hi)`: whole seconds).
pub(super) fn in_ranges(at: u32, ranges: &[(i64, i64)]) -> bool {
    let s = |t: i64| t.div_euclid(1_000_000_000);
    let at = at as i64;
    ranges.iter().any(|&(lo, hi)| s(lo) <= at && at < s(hi))
}

/// The rows of a [`WindowReads::per_minute`] read as the four branches it replaces return
/// them: per hour the sums of its minutes' latest markers (level 1: `marked` of them,
/// `version` the sum of their `ComputedAt`, `spans`, `late`) and its span count (level 2),
/// the minutes' markers and counts (levels 7–8) only within `ends`; the other levels as
/// they are. Also returns every level 7–8 row, for the minute rounds after it.
pub(super) fn per_minute_rows(
    rows: Vec<MarkRow>,
    ends: &[(i64, i64)],
) -> (Vec<MarkRow>, Vec<MarkRow>) {
    let hour = |at: u32| at - at % 3_600;
    let mut sums: std::collections::BTreeMap<(u8, u32), MarkRow> = Default::default();
    let (mut out, mut minutes) = (Vec::new(), Vec::new());
    for r in rows {
        if r.level != 7 && r.level != 8 {
            out.push(r);
            continue;
        }
        let level = r.level - 6;
        let e = sums.entry((level, hour(r.at))).or_insert(MarkRow {
            level,
            at: hour(r.at),
            marked: 0,
            version: 0,
            spans: 0,
            orphans: 0,
            unmatched: 0,
            late: 0,
        });
        // Wrapping, as the engine's `sum` of UInt64 is (a sum of 60 `ComputedAt`s may wrap:
        // it is a version, compared for equality only).
        e.spans = e.spans.wrapping_add(r.spans);
        if r.level == 7 {
            e.marked += 1;
            e.version = e.version.wrapping_add(r.version);
            e.late = e.late.wrapping_add(r.late);
        }
        if in_ranges(r.at, ends) {
            out.push(r);
        }
        minutes.push(r);
    }
    out.extend(sums.into_values());
    (out, minutes)
}

impl MarkRow {
    /// A level-7 row as the minute's marker.
    pub(super) fn minute_marker(&self) -> MinuteMarker {
        MinuteMarker {
            minute: self.at,
            computed_at: self.version,
            spans: self.spans,
            orphans: self.orphans,
            unmatched: self.unmatched,
            late: self.late,
        }
    }
}

#[cfg(test)]
mod tests;
