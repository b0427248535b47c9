//! Reading edge and node aggregates for a window: rolled-up minutes and hours (latest
//! computation of each, current ones only — see [`markers`]) plus the live ranges, computed from
//! spans, merged in the query service.
//!
//! One file per job: [`window`] (the window and its comparison windows), [`markers`] (reading
//! the rollup markers and span counts: every minute for the rollup job, whole current hours
//! summed up for a graph), [`current`] (the exactness rule: which minutes, hours, days and
//! slots are rolled up and current), [`coverage`] (what a window reads where), [`edges`] and [`nodes`] (the three
//! parts of each and their merge); this file holds what both read paths share.

use std::collections::HashMap;

use anyhow::{Context, Result};
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::GraphArgs;
use orrery_store::graph_rules as rules;
use orrery_store::latency;

pub mod coverage;
pub mod current;
pub mod edges;
pub mod markers;
pub mod nodes;
pub mod tail_guess;
pub mod window;
pub use super::agg::{EdgeAgg, LiveCalls, NodeAgg};
pub use coverage::{Coverage, coverage_of};
pub use current::QualityAgg;
pub use edges::{EdgeFilter, Grouping, edges, edges_guessed, edges_in, start_live_edges};
use markers::{Ends, HOUR_NS, ranges_sql, unit_runs};
pub use markers::{HourSum, MinuteMarker, Rolled};
pub use nodes::{NodeKey, nodes, nodes_guessed, nodes_in, start_live_nodes};
pub use window::{Span, Window};

/// Rolled-up minutes of `[rlo, rhi)` outside the hours read from hourly rows and outside the
/// live ranges, each at its latest computation — within the coverage's `minute_bounds` (the
/// ragged ends and the hours around late spans: a few ranges), so a month-long window scans
/// minute rows only there. Hours are whole UTC hours (arithmetic on the Unix time, not
/// `toStartOfHour`, which follows the server's time zone). The computation is found by a
/// subquery, not bound from the markers the read was decided by: see docs/decisions.md
/// "Measured, not done: naming the rows' computation instead of a subquery".
fn rolled_minutes_sql() -> String {
    let bounds = markers::bounds_sql("Minute");
    format!(
        "({bounds}) AND (Minute, ComputedAt) IN (
    SELECT Minute, max(ComputedAt) FROM orrery_graph_minutes
    WHERE ({bounds})
    GROUP BY Minute)
    AND NOT has({{hours:Array(UInt32)}}, toUInt32(intDiv(toUInt32(Minute), 3600) * 3600))
    AND NOT has({{live_minutes:Array(UInt32)}}, toUInt32(Minute))"
    )
}

const MINUTE_RANGE: &str = "Minute >= toDateTime(fromUnixTimestamp64Nano({rlo:Int64}))
    AND Minute < toDateTime(fromUnixTimestamp64Nano({rhi:Int64}))";

/// Rows of the units listed in `{list}` (hours or whole days) within `[rlo, rhi)`, each at
/// its latest computation by its markers' table: one filter for hourly and day rows.
fn rolled_units_sql(col: &str, list: &str, markers: &str) -> String {
    let within = format!(
        "has({{{list}:Array(UInt32)}}, toUInt32({col}))
    AND {col} >= toDateTime(fromUnixTimestamp64Nano({{rlo:Int64}}))
    AND {col} < toDateTime(fromUnixTimestamp64Nano({{rhi:Int64}}))"
    );
    format!(
        "{within}
    AND ({col}, ComputedAt) IN (
        SELECT {col}, max(ComputedAt) FROM {markers}
        WHERE {within}
        GROUP BY {col})"
    )
}

/// Binds the rolled-up part of `w`: `[w.lo, live_lo)` but the live minutes, of which
/// `c.days` from day rows and `c.hours` from hourly rows.
pub(crate) fn bind_rolled(
    q: clickhouse::query::Query,
    w: Window,
    c: &Coverage,
) -> clickhouse::query::Query {
    let q = q
        .param("rlo", w.lo)
        .param("rhi", c.live_lo)
        .param("hours", &c.hours)
        .param("days", &c.days)
        .param("live_minutes", &c.live_minutes);
    let q = markers::bind_ranges(q, "d", Ends::Seconds, &unit_runs(&c.days, 86_400));
    let q = markers::bind_ranges(q, "h", Ends::Seconds, &unit_runs(&c.hours, 3_600));
    markers::bind_bounds(q, &c.minute_bounds)
}

/// Binds one live range `[lo, hi)` of `w`: its spans, whatever the rollup has marked since.
pub(crate) fn bind_live(
    q: clickhouse::query::Query,
    w: Window,
    (lo, hi): (i64, i64),
    s: &GraphArgs,
) -> clickhouse::query::Query {
    let lookback = s.graph_parent_lookback.as_nanos() as i64;
    q.param("lo", lo)
        .param("hi", hi)
        .param("plo", lo - lookback)
        .param("chi", hi + lookback)
        .param("settled", w.now - s.graph_grace.as_nanos() as i64)
        .param("region_attrs", &s.graph_region_attributes)
}

/// Which rollup tables the rolled-up part of a window reads. Every branch of the rolled-up
/// SQL costs its planning even when it reads no row (a 69-column `UNION ALL` branch; the empty
/// day-before baseline of a 24 h graph took ~67 ms for nothing), so only the branches a window
/// needs are written, and a part that needs none is not queried at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RolledTables {
    pub days: bool,
    pub hours: bool,
    pub minutes: bool,
}

impl RolledTables {
    /// From the coverage: day rows for its whole days, hourly rows for its hours, minute rows
    /// when a marked minute of `[w.lo, live_lo)` that held spans lies within its minute bounds
    /// (the minute branch reads only marked minutes there). A minute whose latest marker saw no
    /// span has no rows, and is read from rows only while its count is still that 0 (a late
    /// span makes it stale: read from spans) — so a part made only of such minutes (a baseline
    /// before the data began, a quiet service's filter) sends no query.
    pub(crate) fn of(rolled: &Rolled, w: Window, c: &Coverage) -> Self {
        let in_bounds = |t: i64| c.minute_bounds.iter().any(|&(lo, hi)| lo <= t && t < hi);
        RolledTables {
            days: !c.days.is_empty(),
            hours: !c.hours.is_empty(),
            minutes: c.live_lo > w.lo
                && rolled
                    .minutes
                    .range(w.lo..c.live_lo)
                    .any(|(&t, m)| m.spans > 0 && in_bounds(t)),
        }
    }

    pub(crate) fn any(self) -> bool {
        self.days || self.hours || self.minutes
    }

    /// Whether a [`rolled_agg_sql`] over these tables has more than one branch (days, hours,
    /// minutes), so that a key may come more than once: the reader adds those rows up.
    pub(crate) fn several(self) -> bool {
        [self.days, self.hours, self.minutes]
            .iter()
            .filter(|b| **b)
            .count()
            > 1
    }
}

/// An aggregate over rollup rows, written flat over each table it reads: its SELECT list (key
/// expressions, then [`summed_values`]), an extra filter on the table's columns (SQL constants,
/// values bound) and its GROUP BY. Each branch aggregates its own table and the reader merges
/// the branches' rows by key (histograms merge exactly): passing the 69 rollup columns up
/// through a subquery to one outer GROUP BY cost the engine ~20 ms of planning per statement,
/// more than reading the rows (the 15-minute graph's minute edges with no row read: 47 ms of
/// engine CPU nested, 27 flat; docs/decisions.md).
#[derive(Debug, Clone)]
pub(crate) struct RolledAgg {
    pub select: String,
    pub filter: &'static str,
    pub group_by: &'static str,
}

impl RolledAgg {
    /// This aggregate over `table`'s rows that pass `rows` (the branch's own filter).
    fn over(&self, table: &str, rows: &str) -> String {
        format!(
            "SELECT {}
FROM {table}
WHERE {rows} {}
GROUP BY {}",
            self.select, self.filter, self.group_by
        )
    }
}

/// The value columns of a [`RolledAgg`] over rollup rows: requests, errors, duration sum,
/// min and max, and the histogram as one array (`requests … hist` of the row structs).
pub(crate) fn summed_values() -> String {
    format!(
        "sum(Requests) AS requests, sum(Errors) AS errors, sum(DurationSumNs) AS duration_sum_ns,
    min(DurationMinNs) AS min_ns, max(DurationMaxNs) AS max_ns, {} AS hist",
        latency::sum_array_sql()
    )
}

/// `agg` over the rolled-up rows of a window: day rows of the whole days, hourly rows of the
/// other covered hours, minute rows of the other marked minutes before `live_lo`, each at its
/// latest computation — one branch per table `tables` needs (at least one), joined by
/// `UNION ALL`: a key may come once per branch. The day table is the hourly one's day twin
/// (`_1h` → `_1d`, schema v13).
pub(crate) fn rolled_agg_sql(
    hourly: &str,
    minutely: &str,
    agg: &RolledAgg,
    tables: RolledTables,
) -> String {
    let daily = hourly.replace("_1h", "_1d");
    let mut branches = Vec::new();
    if tables.days {
        branches.push(agg.over(
            &daily,
            &format!(
                "{} AND ({})",
                rolled_units_sql("Day", "days", "orrery_graph_days"),
                ranges_sql("Day", "d", Ends::Seconds)
            ),
        ));
    }
    if tables.hours {
        branches.push(agg.over(
            hourly,
            &format!(
                "{} AND ({})",
                rolled_units_sql("Hour", "hours", "orrery_graph_hours"),
                ranges_sql("Hour", "h", Ends::Seconds)
            ),
        ));
    }
    if tables.minutes || branches.is_empty() {
        branches.push(agg.over(
            minutely,
            &format!("{MINUTE_RANGE} AND {}", rolled_minutes_sql()),
        ));
    }
    branches.join("\nUNION ALL\n")
}

/// The part of a cache key that says which rollup rows a window's rolled-up part is made of:
/// the versions of its hours (each the sum of its minutes' versions, so a recomputed minute
/// changes it) and of the rolled-up minutes read one by one, and which minutes are left out
/// for the live part (a minute that turns stale changes the key even before it is
/// recomputed). A summed-up hour is one entry, a whole day one: a month-long window's key has
/// ~30 days and the hours and minutes of its ragged ends, not ~43,000 minutes.
pub(crate) fn rolled_versions(
    rolled: &Rolled,
    w: Window,
    c: &Coverage,
) -> (Vec<(i64, u64)>, Vec<u32>) {
    let hours = c.hours.iter().map(|h| {
        let at = *h as i64 * 1_000_000_000;
        (at, rolled.hours.get(&at).copied().unwrap_or(0))
    });
    // A day read whole is one entry (its marker's version); negated, so it never reads as
    // the hour starting at the same instant.
    let days = c.days.iter().map(|d| {
        let at = *d as i64 * 1_000_000_000;
        (-at - 1, rolled.days.get(&at).copied().unwrap_or(0))
    });
    let minutes = rolled
        .minutes
        .range(w.lo..c.live_lo)
        .map(|(m, mark)| (*m, mark.computed_at));
    // A summed-up hour not read whole (by construction none) still keys its version.
    let summed = rolled
        .summarized
        .range(w.lo..c.live_lo)
        .filter(|(h, _)| {
            let h = (**h / 1_000_000_000) as u32;
            let day = h - h % markers::DAY_S;
            c.hours.binary_search(&h).is_err() && c.days.binary_search(&day).is_err()
        })
        .map(|(h, s)| (*h, s.version));
    (
        days.chain(hours).chain(minutes).chain(summed).collect(),
        c.live_minutes.clone(),
    )
}

/// `old` then `live` with rows of equal key added up (one copy of each row, no key clones).
pub(crate) fn merge_by_key<'a, T: Clone, K: std::hash::Hash + Eq + 'a>(
    old: &'a [T],
    live: &'a [T],
    key: impl Fn(&'a T) -> K,
    add: impl Fn(&mut T, &T),
) -> Vec<T> {
    let mut index: HashMap<K, usize> = HashMap::with_capacity(old.len() + live.len());
    let mut out: Vec<T> = Vec::with_capacity(old.len() + live.len());
    for row in old.iter().chain(live) {
        match index.entry(key(row)) {
            std::collections::hash_map::Entry::Occupied(o) => add(&mut out[*o.get()], row),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(out.len());
                out.push(row.clone());
            }
        }
    }
    out
}

/// The per-key folds of a live read's ranges (normally one) as one, adding with `add` the keys
/// two ranges share.
pub(crate) fn merge_folds<K: std::hash::Hash + Eq, V: Default>(
    parts: Vec<HashMap<K, V>>,
    add: impl Fn(&mut V, V),
) -> HashMap<K, V> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next().unwrap_or_default();
    for part in parts {
        for (key, v) in part {
            add(merged.entry(key).or_default(), v);
        }
    }
    merged
}

/// `agg` over the rows of a slot table in `[slo, shi)`, each slot at its latest computation.
pub(crate) fn slot_agg_sql(table: &str, agg: &RolledAgg) -> String {
    agg.over(
        table,
        "Slot >= toDateTime(fromUnixTimestamp64Nano({slo:Int64}))
    AND Slot < toDateTime(fromUnixTimestamp64Nano({shi:Int64}))
    AND (Slot, ComputedAt) IN (
        SELECT Slot, max(ComputedAt) FROM orrery_graph_slots
        WHERE Slot >= toDateTime(fromUnixTimestamp64Nano({slo:Int64}))
          AND Slot < toDateTime(fromUnixTimestamp64Nano({shi:Int64}))
        GROUP BY Slot)",
    )
}

/// Binds a slot read of `c.slots` ([`slot_agg_sql`]).
pub(crate) fn bind_slots(q: clickhouse::query::Query, c: &Coverage) -> clickhouse::query::Query {
    q.param("slo", c.slots.0).param("shi", c.slots.1)
}

#[derive(Row, Deserialize, Debug, Clone)]
struct NamespaceRow {
    service: String,
    namespace: String,
}

/// How far back from the window's end services' namespaces are looked up: a namespace is a
/// deployment fact that rarely changes, so the last hour is enough and keeps the read small.
const NAMESPACE_LOOKBACK_NS: i64 = HOUR_NS;

/// Each service's namespace (`k8s.namespace.name`, else `service.namespace`, both kept in
/// `orrery_span_calls.Resource`), from its spans in the last hour (at most) of `w`; services
/// with neither are left out. When spans disagree the latest wins.
pub async fn namespaces(
    client: &Client,
    w: Window,
) -> Result<std::collections::BTreeMap<String, String>> {
    let rows: Vec<NamespaceRow> = client
        .query(&format!(
            "SELECT toString(ServiceName) AS service, argMax(ns, Timestamp) AS namespace
FROM (
    SELECT ServiceName, Timestamp, {} AS ns
    FROM orrery_span_calls
    WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND Timestamp < fromUnixTimestamp64Nano({{hi:Int64}})
)
WHERE ns != ''
GROUP BY ServiceName",
            rules::NAMESPACE_EXPR
        ))
        .param("lo", w.lo.max(w.hi - NAMESPACE_LOOKBACK_NS))
        .param("hi", w.hi)
        .fetch_all()
        .await
        .context("reading service namespaces")?;
    Ok(rows.into_iter().map(|r| (r.service, r.namespace)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_store::latency::Histogram;

    #[test]
    fn rolled_agg_sql_writes_only_the_branches_a_window_needs() {
        let t = |days, hours, minutes| RolledTables {
            days,
            hours,
            minutes,
        };
        let agg = RolledAgg {
            select: "toString(Service) AS id".into(),
            filter: "",
            group_by: "id",
        };
        let sql = |tables| {
            rolled_agg_sql(
                "orrery_graph_nodes_1h",
                "orrery_graph_nodes_1m",
                &agg,
                tables,
            )
        };
        let hours = sql(t(false, true, false));
        assert!(hours.contains("FROM orrery_graph_nodes_1h"));
        assert!(!hours.contains("_1d") && !hours.contains("_1m") && !hours.contains("UNION"));
        let ends = sql(t(true, false, true));
        assert!(
            ends.contains("FROM orrery_graph_nodes_1d")
                && ends.contains("FROM orrery_graph_nodes_1m")
        );
        assert!(!ends.contains("FROM orrery_graph_nodes_1h"));
        let all = sql(t(true, true, true));
        assert_eq!(all.matches("UNION ALL").count(), 2);
        // Each branch aggregates its own table: no subquery to plan the columns through.
        assert_eq!(all.matches("GROUP BY id").count(), 3);
        assert!(!all.contains("FROM ("));
        assert!(!t(false, false, false).any() && t(false, false, true).any());
        assert!(t(true, false, true).several() && !t(false, false, true).several());
    }

    #[test]
    fn minutes_whose_markers_saw_no_span_send_no_minute_read() {
        let m = 60_000_000_000i64;
        let w = Window {
            lo: 100 * m,
            hi: 115 * m,
            now: 115 * m,
        };
        let mut rolled = Rolled::default();
        for t in 100..110 {
            rolled.minutes.insert(
                t * m,
                MinuteMarker {
                    minute: (t * 60) as u32,
                    computed_at: 1,
                    ..MinuteMarker::default()
                },
            );
        }
        let c = Coverage {
            live_lo: 110 * m,
            minute_bounds: vec![(100 * m, 110 * m)],
            live: vec![(110 * m, 115 * m)],
            ..Coverage::default()
        };
        assert!(
            !RolledTables::of(&rolled, w, &c).any(),
            "empty minutes: no read"
        );
        rolled.minutes.get_mut(&(104 * m)).unwrap().spans = 3;
        assert!(
            RolledTables::of(&rolled, w, &c).minutes,
            "one minute with spans"
        );
        // Outside the minute bounds (an hour read whole, say) it is not a minute read.
        let elsewhere = Coverage {
            minute_bounds: vec![(105 * m, 110 * m)],
            ..c
        };
        assert!(!RolledTables::of(&rolled, w, &elsewhere).minutes);
    }

    #[test]
    fn whole_days_and_hours_are_bound_as_their_runs() {
        let h = 1_000 * 3_600;
        // Two runs of hours (the window's two ends) and a lone one.
        let hours = [
            h,
            h + 3_600,
            h + 7_200,
            h + 30 * 3_600,
            h + 31 * 3_600,
            h + 50 * 3_600,
        ];
        assert_eq!(
            unit_runs(&hours, 3_600),
            vec![
                (h as i64, h as i64 + 3 * 3_600),
                (h as i64 + 30 * 3_600, h as i64 + 32 * 3_600),
                (h as i64 + 50 * 3_600, h as i64 + 51 * 3_600),
            ]
        );
        assert_eq!(unit_runs(&[], 86_400), vec![]);
        // Never more ranges than the statement binds: the closest runs are joined.
        let scattered: Vec<u32> = (0..20).map(|i| h + i * 2 * 3_600).collect();
        let runs = unit_runs(&scattered, 3_600);
        assert_eq!(runs.len(), markers::MAX_BOUNDS);
        assert!(
            scattered
                .iter()
                .all(|&u| runs.iter().any(|&(a, b)| a <= u as i64 && (u as i64) < b))
        );
        assert!(
            ranges_sql("Hour", "h", Ends::Seconds).contains("Hour < toDateTime({h7hi:UInt32})")
        );
    }

    #[test]
    fn a_live_keys_bucket_rows_fold_into_its_calls() {
        use orrery_store::latency::index as bucket_of;
        let ms = 1_000_000u64;
        // Three calls of one edge in two latency buckets, as the live read returns them: one
        // row per bucket with its count, errors, sum, min and max.
        let (a, b, c) = (10 * ms, 10 * ms + ms / 10, 400 * ms);
        let (fast, slow) = (bucket_of(a), bucket_of(c));
        assert!(bucket_of(b) == fast && fast != slow);
        let mut sum = LiveCalls::default();
        sum.add(&LiveCalls::bucket(fast as u8, (2, 1, a + b), (a, b)));
        sum.add(&LiveCalls::bucket(slow as u8, (1, 0, c), (c, c)));
        assert_eq!(
            (sum.requests, sum.errors, sum.duration_sum_ns),
            (3, 1, a + b + c)
        );
        assert_eq!(sum.latency, Histogram::of(&[a, b, c]));
    }

    #[test]
    fn rolled_and_live_rows_of_one_key_add_up() {
        let row = |k: &str, n: u64, ms: u64| NodeAgg {
            id: k.into(),
            region: String::new(),
            requests: n,
            errors: 0,
            duration_sum_ns: n * ms * 1_000_000,
            latency: Histogram::of(&vec![ms * 1_000_000; n as usize]),
            q: Vec::new(),
        };
        let old = [row("a", 2, 10), row("b", 1, 5)];
        let live = [row("a", 1, 40), row("c", 3, 1)];
        let out = merge_by_key(&old, &live, |n| &n.id, NodeAgg::add);
        let got: Vec<(&str, u64)> = out.iter().map(|n| (n.id.as_str(), n.requests)).collect();
        assert_eq!(got, [("a", 3), ("b", 1), ("c", 3)]);
        assert_eq!(
            out[0].latency,
            Histogram::of(&[10_000_000, 10_000_000, 40_000_000])
        );
    }
}
