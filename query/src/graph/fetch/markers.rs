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

pub const MINUTE_NS: i64 = 60_000_000_000;
pub const HOUR_NS: i64 = 60 * MINUTE_NS;
/// The finer grain between rolled-up minutes and spans (schema v10).
pub const SLOT_NS: i64 = 10_000_000_000;
/// A slot is rolled up this long after it ends: the graph's 5 s grace for a client span to
/// find its child, and as long again for stragglers.
pub const SLOT_DELAY_NS: i64 = 10_000_000_000;
/// Slots are read only this close to a window's end (they only bridge the last minutes).
const SLOT_READ_NS: i64 = 5 * MINUTE_NS;

/// A slot's latest marker: its computation and the span count it saw.
#[derive(Row, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotMark {
    pub at: u32,
    pub computed_at: u64,
    pub spans: u64,
}

/// Slot markers and slot span counts of `[lo, hi)` (ns keys).
pub async fn read_slots(
    client: &Client,
    lo: i64,
    hi: i64,
) -> Result<(BTreeMap<i64, SlotMark>, BTreeMap<i64, u64>)> {
    let marks = client
        .query(
            "SELECT toUInt32(Slot) AS at, max(ComputedAt) AS computed_at,
    argMax(Spans, ComputedAt) AS spans
FROM orrery_graph_slots
WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Slot < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Slot",
        )
        .param("lo", lo)
        .param("hi", hi)
        .fetch_all::<SlotMark>();
    let counts = client
        .query(
            "SELECT toUInt32(Slot) AS at, toUInt64(0) AS computed_at, sum(Spans) AS spans
FROM orrery_span_slots
WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Slot < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Slot",
        )
        .param("lo", lo)
        .param("hi", hi)
        .fetch_all::<SlotMark>();
    let (marks, counts) = tokio::try_join!(marks, counts).context("reading slot markers")?;
    let key = |at: u32| at as i64 * 1_000_000_000;
    Ok((
        marks.into_iter().map(|m| (key(m.at), m)).collect(),
        counts.into_iter().map(|c| (key(c.at), c.spans)).collect(),
    ))
}

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

/// Per-hour sums of the latest minute markers (`level` 1) and of the span counts (`level` 2).
#[derive(Row, Deserialize)]
struct HourRow {
    level: u8,
    hour: u32,
    marked: u64,
    version: u64,
    spans: u64,
    late: u64,
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
}

/// `--graph-max-unrolled`'s default: an hour of spans at most is joined per window.
pub const DEFAULT_MAX_UNROLLED_NS: i64 = HOUR_NS;

impl Default for Rolled {
    fn default() -> Self {
        Rolled {
            minutes: BTreeMap::new(),
            summarized: BTreeMap::new(),
            hours: BTreeMap::new(),
            spans: BTreeMap::new(),
            slots: BTreeMap::new(),
            slot_spans: BTreeMap::new(),
            max_unrolled: DEFAULT_MAX_UNROLLED_NS,
            readable_from: i64::MIN,
        }
    }
}

/// `[lo, hi)` conditions on a DateTime column for up to this many ranges (one statement
/// shape whatever the count; unused ranges are bound empty).
pub const MAX_BOUNDS: usize = 8;

/// `(col >= b0lo AND col < b0hi) OR …` for [`MAX_BOUNDS`] ranges bound by [`bind_bounds`].
pub fn bounds_sql(col: &str) -> String {
    (0..MAX_BOUNDS)
        .map(|i| {
            format!(
                "({col} >= toDateTime(fromUnixTimestamp64Nano({{b{i}lo:Int64}})) \
                 AND {col} < toDateTime(fromUnixTimestamp64Nano({{b{i}hi:Int64}})))"
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Binds `ranges` (at most [`MAX_BOUNDS`]; see [`cover_ranges`]) to [`bounds_sql`].
pub fn bind_bounds(
    mut q: clickhouse::query::Query,
    ranges: &[(i64, i64)],
) -> clickhouse::query::Query {
    debug_assert!(ranges.len() <= MAX_BOUNDS);
    for i in 0..MAX_BOUNDS {
        let (lo, hi) = ranges.get(i).copied().unwrap_or((0, 0));
        q = q
            .param(&format!("b{i}lo"), lo)
            .param(&format!("b{i}hi"), hi);
    }
    q
}

/// At most [`MAX_BOUNDS`] ranges covering `ranges` (ascending, disjoint): the closest
/// neighbours are joined first, so the result is a superset only where that is needed.
pub fn cover_ranges(ranges: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = ranges.to_vec();
    while out.len() > MAX_BOUNDS {
        let i = (1..out.len())
            .min_by_key(|&i| out[i].0 - out[i - 1].1)
            .unwrap_or(1);
        out[i - 1].1 = out[i].1;
        out.remove(i);
    }
    out
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
            if r.level == 1 {
                out.hours.insert(at, r.value);
            } else {
                out.spans.insert(at, r.value);
            }
        }
        Ok(out)
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
        let sums = client
            .query(
                "SELECT 1 AS level, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600) AS hour,
    count() AS marked, sum(c) AS version, sum(s) AS spans, sum(l) AS late
FROM (
    SELECT Minute, max(ComputedAt) AS c, argMax(Spans, ComputedAt) AS s,
        argMax(Late, ComputedAt) AS l
    FROM orrery_graph_minutes
    WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
      AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
    GROUP BY Minute
)
GROUP BY hour
UNION ALL
SELECT 2 AS level, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600) AS hour,
    toUInt64(0) AS marked, toUInt64(0) AS version, sum(Spans) AS spans, toUInt64(0) AS late
FROM orrery_span_minutes
WHERE Minute >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Minute < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY hour",
            )
            .param("lo", first)
            .param("hi", end)
            .fetch_all::<HourRow>();
        let hours = client
            .query(
                "SELECT 1 AS level, toUInt32(Hour) AS at, argMax(MinutesVersion, ComputedAt) AS value
FROM orrery_graph_hours
WHERE Hour >= toDateTime(fromUnixTimestamp64Nano({lo:Int64}))
  AND Hour < toDateTime(fromUnixTimestamp64Nano({hi:Int64}))
GROUP BY Hour",
            )
            .param("lo", first)
            .param("hi", end)
            .fetch_all::<CountRow>();
        let slots = read_slots(client, lo.max(hi - SLOT_READ_NS), hi);
        let (sums, hours, (slots, slot_spans)) = tokio::try_join!(
            async { sums.await.context("reading rollup markers per hour") },
            async { hours.await.context("reading rollup hour markers") },
            slots
        )?;
        let mut marks: BTreeMap<i64, HourRow> = BTreeMap::new();
        let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
        for r in sums {
            let at = r.hour as i64 * 1_000_000_000;
            if r.level == 1 {
                marks.insert(at, r);
            } else {
                counts.insert(at, r.spans);
            }
        }
        let mut out = Rolled {
            slots,
            slot_spans,
            hours: hours
                .into_iter()
                .map(|r| (r.at as i64 * 1_000_000_000, r.value))
                .collect(),
            ..Default::default()
        };
        // Counts equal to what the markers saw (an hour with neither is quiet too).
        let quiet =
            |h: i64| marks.get(&h).map_or(0, |m| m.spans) == counts.get(&h).copied().unwrap_or(0);
        for (&h, m) in &marks {
            let whole = h >= lo && h + HOUR_NS <= hi && m.marked == 60;
            if whole
                && quiet(h - HOUR_NS)
                && quiet(h)
                && quiet(h + HOUR_NS)
                && out.hours.get(&h) == Some(&m.version)
            {
                out.summarized.insert(
                    h,
                    HourSum {
                        version: m.version,
                        spans: m.spans,
                        late: m.late,
                    },
                );
            }
        }
        // Everything else, minute by minute.
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
        if rest.is_empty() {
            return Ok(out);
        }
        let bounds = cover_ranges(&rest);
        let skip: Vec<u32> = out
            .summarized
            .keys()
            .map(|h| (h / 1_000_000_000) as u32)
            .collect();
        let skip_sql =
            "NOT has({skip:Array(UInt32)}, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600))";
        let (bounds_m, bounds_c) = (bounds_sql("Minute"), bounds_sql("Minute"));
        let markers = bind_bounds(
            client.query(&format!(
                "SELECT Minute, m.1 AS ComputedAt, m.2 AS Spans, m.3 AS Orphans,
    m.4 AS Unmatched, m.5 AS Late
FROM (
    SELECT Minute, argMax((ComputedAt, Spans, Orphans, Unmatched, Late), ComputedAt) AS m
    FROM orrery_graph_minutes
    WHERE ({bounds_m}) AND {skip_sql}
    GROUP BY Minute
)"
            )),
            &bounds,
        )
        .param("skip", &skip)
        .fetch_all::<MinuteMarker>();
        let counts = bind_bounds(
            client.query(&format!(
                "SELECT 2 AS level, toUInt32(Minute) AS at, sum(Spans) AS value
FROM orrery_span_minutes
WHERE ({bounds_c}) AND {skip_sql}
GROUP BY Minute"
            )),
            &bounds,
        )
        .param("skip", &skip)
        .fetch_all::<CountRow>();
        let (markers, counts) = tokio::try_join!(
            async { markers.await.context("reading rollup markers") },
            async { counts.await.context("reading span counts") },
        )?;
        for m in markers {
            out.minutes.insert(m.minute as i64 * 1_000_000_000, m);
        }
        for r in counts {
            out.spans.insert(r.at as i64 * 1_000_000_000, r.value);
        }
        Ok(out)
    }
}
