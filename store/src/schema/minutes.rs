//! Schema v14: minute rollups kept hours, not the retention; hour markers that stand alone.
//!
//! The minute rollups (`orrery_graph_edges_1m`, `_nodes_1m`, markers `orrery_graph_minutes`)
//! were ~3.3 B/span of the steady-state footprint at 7 days' retention. Past the minute
//! rollup's horizon they are read only for a window's ragged ends and hours around late spans;
//! whole hours come from hour (and day) rows. So minute rows live [`MINUTES_HOURS`] after the
//! later of their minute and their computation, and the hour marker records the span count its
//! minutes saw (`orrery_graph_hours.Spans`; −1 on markers written before v14): an hour older
//! than [`minutes_from`] is judged by its own marker — whole while its span
//! count (counted on insert, kept the retention) still equals that `Spans` and its neighbours'
//! do too — without its minutes.
//!
//! - The TTL runs from `greatest(Minute, computation)`: a minute the backfill (re)computes for
//!   an old hour lives [`MINUTES_HOURS`] after it is written, so the hour merge that follows it
//!   within seconds always finds its rows (a TTL on `Minute` alone could drop them between the
//!   two statements).
//! - Markers go an hour before their rows ([`MINUTE_MARKER_HOURS`]): TTL merges of two tables
//!   run apart, and a marker without its rows would read as a minute without traffic. A
//!   minute without a marker is never "empty": where spans were counted it is left out and
//!   reported.
//! - Rows go by row TTL (`ttl_only_drop_parts = 0`, TTL merges at least every 30 min), as the
//!   call copy's (v12). Existing parts keep their TTL until merges rewrite them
//!   (`materialize_ttl_after_modify = 0`).
//! - A retention shorter than [`MINUTES_HOURS`] keeps its own (shorter) TTL.

use super::SchemaParams;
use super::footprint::CALLS_TTL_MERGE_S;

/// Hours a minute rollup row is kept after the later of its minute and its computation
/// (schema v14). More than a day: a 24 h window's first minutes and the minute rollup's own
/// horizon ([`minutes_from`]) are always inside it.
pub const MINUTES_HOURS: u32 = 26;
/// Hours a minute marker is kept: an hour less than its rows (see the module's doc).
pub const MINUTE_MARKER_HOURS: u32 = MINUTES_HOURS - 1;

/// The first hour (ns) at `now_ns` whose minute rollups are all kept: minute markers live
/// [`MINUTE_MARKER_HOURS`] after their minute or computation, whichever is later, less an hour
/// of margin for the TTL's clock and merges. Hours before it are judged by their hour marker
/// alone (its `Spans` against the hour's span count: the query service's `Rolled::read_window`
/// and the backfill); the minute rollup never looks back past it.
pub fn minutes_from(now_ns: i64) -> i64 {
    const HOUR_NS: i64 = 3_600_000_000_000;
    let kept = (MINUTE_MARKER_HOURS as i64 - 1) * HOUR_NS;
    (now_ns - kept).div_euclid(HOUR_NS) * HOUR_NS
}

pub(super) fn v14_minute_ttl(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let table = |name: &str| format!("{db}.{}{oc}", p.storage_name(name));
    let mut out = vec![format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS Spans Int64 DEFAULT -1",
        table("orrery_graph_hours")
    )];
    if p.cluster.is_some() {
        // The Distributed table in front has the columns it was created with.
        out.push(format!(
            "ALTER TABLE {db}.orrery_graph_hours{oc} ADD COLUMN IF NOT EXISTS Spans Int64 DEFAULT -1"
        ));
    }
    for (t, hours) in ttl_tables(p) {
        out.push(format!(
            "ALTER TABLE {t} MODIFY SETTING ttl_only_drop_parts = 0, merge_with_ttl_timeout = {CALLS_TTL_MERGE_S}"
        ));
        out.push(minute_ttl(&t, hours, "intDiv(ComputedAt, 1000)"));
    }
    out
}

/// The minute rollup tables that get a TTL of their own (v14), full names, with their hours:
/// all three, but where the retention is already shorter (those keep the retention's).
fn ttl_tables(p: &SchemaParams) -> impl Iterator<Item = (String, u32)> + '_ {
    let retention_hours = p.retention_days * 24;
    [
        ("orrery_graph_edges_1m", MINUTES_HOURS),
        ("orrery_graph_nodes_1m", MINUTES_HOURS),
        ("orrery_graph_minutes", MINUTE_MARKER_HOURS),
    ]
    .into_iter()
    .filter(move |&(_, hours)| retention_hours == 0 || retention_hours > hours)
    .map(|(name, hours)| {
        let t = format!("{}.{}{}", p.database, p.storage_name(name), p.on_cluster());
        (t, hours)
    })
}

/// The TTL of a minute rollup table `t` (its full name): `hours` after the later of the minute
/// and its computation, the computation's Unix second given by `computed_s`.
fn minute_ttl(t: &str, hours: u32, computed_s: &str) -> String {
    format!(
        "ALTER TABLE {t} MODIFY TTL greatest(Minute, toDateTime({computed_s})) + toIntervalHour({hours})
SETTINGS materialize_ttl_after_modify = 0"
    )
}

/// Schema v16: `ComputedAt` carries a writer id in its low bits (`crate::computed_at`), so
/// the minute rollups' TTL (v14) reads the computation's time back through it. Tables whose
/// TTL is the retention's (shorter than the minutes' hours) are left as v14 left them.
pub(super) fn v16_computed_at_writer(p: &SchemaParams) -> Vec<String> {
    let computed_s = crate::computed_at::seconds_sql("ComputedAt");
    ttl_tables(p)
        .map(|(t, hours)| minute_ttl(&t, hours, &computed_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(cluster: Option<&str>, days: u32) -> SchemaParams {
        SchemaParams {
            database: "orrery".into(),
            retention_days: days,
            cluster: cluster.map(String::from),
        }
    }

    #[test]
    fn minute_markers_go_before_their_rows_and_a_short_retention_keeps_its_own() {
        let all = v14_minute_ttl(&params(None, 7));
        let ttl = |all: &[String], t: &str| {
            all.iter()
                .find(|s| s.contains(&format!("{t} MODIFY TTL")))
                .cloned()
        };
        assert!(
            ttl(&all, "orrery_graph_minutes")
                .unwrap()
                .contains("ComputedAt, 1000))) + toIntervalHour(25)")
        );
        for rows in ["orrery_graph_edges_1m", "orrery_graph_nodes_1m"] {
            assert!(ttl(&all, rows).unwrap().contains("toIntervalHour(26)"));
        }
        const { assert!(MINUTE_MARKER_HOURS < MINUTES_HOURS) };
        // Forever keeps minutes 26 h too; a one-day retention is shorter already.
        assert!(ttl(&v14_minute_ttl(&params(None, 0)), "orrery_graph_minutes").is_some());
        let one_day = v14_minute_ttl(&params(None, 1));
        assert_eq!(one_day.len(), 1, "{one_day:?}");
        let cluster = v14_minute_ttl(&params(Some("c1"), 7));
        assert!(
            cluster[0].starts_with("ALTER TABLE orrery.orrery_graph_hours_local ON CLUSTER c1")
        );
        assert!(cluster[1].starts_with("ALTER TABLE orrery.orrery_graph_hours ON CLUSTER c1"));
    }

    #[test]
    fn v16_reads_the_computation_time_through_the_writer_bits_where_v14_set_a_ttl() {
        let all = v16_computed_at_writer(&params(None, 7));
        assert_eq!(all.len(), 3, "{all:?}");
        for s in &all {
            assert!(
                s.contains(&format!(
                    "toDateTime({})",
                    crate::computed_at::seconds_sql("ComputedAt")
                )),
                "{s}"
            );
        }
        assert!(all[2].contains("orrery_graph_minutes MODIFY TTL"));
        assert!(all[2].contains("toIntervalHour(25)"));
        // Where v14 left the retention's TTL, v16 leaves it too.
        assert!(v16_computed_at_writer(&params(None, 1)).is_empty());
        let cluster = v16_computed_at_writer(&params(Some("c1"), 7));
        assert!(
            cluster[0].starts_with("ALTER TABLE orrery.orrery_graph_edges_1m_local ON CLUSTER c1")
        );
    }
}
