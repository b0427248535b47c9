//! The footprint migrations: derived data lives only as long as something reads it, and what
//! is kept long is compressed for how it is read.
//!
//! **Schema v11**: the derived call copy `orrery_span_calls` lives only as long as the rollup can
//! need it, not the whole retention.
//!
//! `orrery_span_calls` (v4) is a time-ordered copy of the columns the graph joins: ~21 bytes a
//! span, 15 of them two random 64-bit hashes that do not compress — as much as a third of
//! `otel_traces` itself. What reads it: the minute and slot rollups (closed minutes, and late
//! spans' minutes), the live part of a graph (the last seconds), and windows not yet rolled
//! up. Edge detail's operations and exemplars read `otel_traces` (pruned by the edge's two
//! services, by the same rules: `graph_rules::edge_spans_sql`), which keeps spans for the whole
//! retention, and every graph number of an older window comes from the rollups (same retention
//! as the spans). v11 kept call rows 49 hours (the minute rollup's 48 h horizon read only the
//! copy), dropping whole day parts (`ttl_only_drop_parts = 1` since v4), so rows lived 49–73 h.
//!
//! **Schema v12** ([`v12_footprint`]): the copy keeps [`CALLS_HOURS`] (6) hours, and rows go
//! by row TTL (`ttl_only_drop_parts = 0`, TTL merges at least every [`CALLS_TTL_MERGE_S`]): a
//! day partition's parts are rewritten without their expired rows rather than kept until
//! the day's last row expires, so rows live 6 h to 6.5 h (plus the merge scheduler's delay).
//! Minutes older than the copy's reach are (re)computed from `otel_traces` by the call view's
//! own expressions (`graph_rules::CallSource::Spans`, the hourly backfill's source since v11);
//! a row already older than the TTL when it is inserted (a span 6 h late) is dropped by the
//! insert itself, so the copy never holds part of an old minute. Existing parts are not
//! rewritten by the upgrade (`materialize_ttl_after_modify = 0`): they go by the TTL they were
//! written with (v11's, at most 73 h), or sooner when a merge rewrites them.
//!
//! v12 also keeps the 10-second slots hours instead of a day ([`SLOT_ROWS_HOURS`], markers
//! [`SLOT_MARKER_HOURS`]: a slot is read only past the minute rollup's frontier), and gives the
//! rollup tables' columns ZSTD (they had ClickHouse's default LZ4: 6.6 → 2.9 B/span for the
//! minute edges on the bench data) and a few wide `otel_traces` columns ZSTD(3) (−2 B/span);
//! names and types stay the exporter's.
use super::SchemaParams;
use super::ddl::EDGE_KEYS;
use crate::latency;

/// The key columns of a node rollup table.
const NODE_KEYS: &[&str] = &["Service", "Region", "Instance"];

/// Hours a call row is kept at least (schema v12), whatever the retention (the shortest, one
/// day, is longer; retention 0 still expires calls). What reads the copy: the minute rollup's
/// regular runs (15 min back, with their parents 10 min before), the live part of a graph and
/// its stale minutes, at most `--graph-max-unrolled` (1 h) of a window not rolled up. Older
/// minutes are computed from `otel_traces` (`orrery_query::rollup::copy_from`).
pub const CALLS_HOURS: u32 = 6;

/// Seconds between TTL merges of one partition of the copy at most (ClickHouse's default is
/// 4 h, which would keep rows up to 10 h).
pub const CALLS_TTL_MERGE_S: u32 = 1800;

/// v11's TTL (released DDL: never changes): 49 h, or the retention when shorter.
fn v11_hours(p: &SchemaParams) -> u32 {
    match p.retention_days {
        0 => 49,
        r => (r * 24).min(49),
    }
}

pub(super) fn v11_calls_ttl(p: &SchemaParams) -> Vec<String> {
    vec![format!(
        "ALTER TABLE {db}.{calls}{oc} MODIFY TTL toDateTime(Timestamp) + toIntervalHour({hours})
SETTINGS materialize_ttl_after_modify = 0",
        db = p.database,
        calls = p.storage_name("orrery_span_calls"),
        oc = p.on_cluster(),
        hours = v11_hours(p),
    )]
}

/// Hours a 10-second slot's rows (and its span count) are kept (schema v12): a slot is read
/// only after the minute rollup's frontier, which trails now by a minute or two; longer only
/// while the minute rollup lags, when what has no slot rows is read from the copy.
pub const SLOT_ROWS_HOURS: u32 = 2;
/// Hours a slot's marker is kept: less than its rows, so a marker never outlives its rows
/// (TTL merges of two tables run apart; a marker without rows would read as an empty slot).
pub const SLOT_MARKER_HOURS: u32 = 1;

/// The rollup tables recompressed by v12 and their key columns.
const ROLLUP_TABLES: &[(&str, &[&str])] = &[
    ("orrery_graph_edges_1m", EDGE_KEYS),
    ("orrery_graph_nodes_1m", NODE_KEYS),
    ("orrery_graph_edges_1h", EDGE_KEYS),
    ("orrery_graph_nodes_1h", NODE_KEYS),
    ("orrery_graph_services_1h", EDGE_KEYS),
    ("orrery_graph_edges_10s", EDGE_KEYS),
    ("orrery_graph_nodes_10s", NODE_KEYS),
];

/// `otel_traces` columns recompressed by v12 (`IF EXISTS`: tables of older exporter releases
/// lack some; the types stay whatever they are). Measured on the 10M-span bench data (6 h of
/// spans, merged): maps 4.1 → 2.7 B/span, ids and times −0.6, Duration −0.1. `TraceId` stays
/// at ZSTD(1) (level 3 made it larger: 12.9 → 14.0 B/span), as does everything mostly empty.
const SPAN_CODECS: &[(&str, &str)] = &[
    ("Timestamp", "Delta, ZSTD(3)"),
    ("SpanId", "ZSTD(3)"),
    ("ParentSpanId", "ZSTD(3)"),
    ("ResourceAttributes", "ZSTD(3)"),
    ("SpanAttributes", "ZSTD(3)"),
    ("Duration", "ZSTD(3)"),
];

/// Schema v12's statements: the call copy's row TTL of [`CALLS_HOURS`], the 10-second slots'
/// TTLs of hours, and codecs for the rollup tables (their value columns had ClickHouse's
/// default LZ4) and the spans' wide columns. A codec change is metadata only: new parts
/// get it, and existing ones as merges rewrite them.
pub(super) fn v12_footprint(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let table = |name: &str| format!("{db}.{}{oc}", p.storage_name(name));
    let calls = table("orrery_span_calls");
    let mut out = vec![
        // Settings first: once the TTL is short, parts must not wait for their day to end.
        format!(
            "ALTER TABLE {calls} MODIFY SETTING ttl_only_drop_parts = 0, merge_with_ttl_timeout = {CALLS_TTL_MERGE_S}"
        ),
        format!(
            "ALTER TABLE {calls} MODIFY TTL toDateTime(Timestamp) + toIntervalHour({CALLS_HOURS})
SETTINGS materialize_ttl_after_modify = 0"
        ),
    ];
    for (name, hours) in [
        ("orrery_graph_edges_10s", SLOT_ROWS_HOURS),
        ("orrery_graph_nodes_10s", SLOT_ROWS_HOURS),
        ("orrery_span_slots", SLOT_ROWS_HOURS),
        ("orrery_graph_slots", SLOT_MARKER_HOURS),
    ] {
        let t = table(name);
        out.push(format!(
            "ALTER TABLE {t} MODIFY SETTING merge_with_ttl_timeout = {CALLS_TTL_MERGE_S}"
        ));
        out.push(format!(
            "ALTER TABLE {t} MODIFY TTL Slot + toIntervalHour({hours})
SETTINGS materialize_ttl_after_modify = 0"
        ));
    }
    for (name, keys) in ROLLUP_TABLES {
        out.push(format!(
            "ALTER TABLE {} {}",
            table(name),
            rollup_codecs(keys)
        ));
    }
    out.push(format!(
        "ALTER TABLE {} {}",
        table("otel_traces"),
        modify_codecs(SPAN_CODECS.iter().copied())
    ));
    out
}

/// The `MODIFY COLUMN … CODEC` clauses of a rollup table with key columns `keys`: ZSTD(3) on
/// the version, keys and counts, T64 + ZSTD(3) on the histogram buckets (v12; the day tables of
/// v13 get the same).
pub(super) fn rollup_codecs(keys: &[&str]) -> String {
    let mut columns: Vec<(String, &str)> = ["ComputedAt"]
        .iter()
        .chain(keys.iter())
        .chain(COUNT_COLUMNS.iter())
        .map(|c| (c.to_string(), "ZSTD(3)"))
        .collect();
    // Bucket counts: mostly zero or small; T64 keeps only their used bits.
    columns.extend((0..latency::BUCKETS).map(|i| (latency::column(i), "T64, ZSTD(3)")));
    modify_codecs(columns.iter().map(|(c, k)| (c.as_str(), *k)))
}

/// The rollup value columns before the histogram (`ddl::histogram_value_columns_ddl`).
const COUNT_COLUMNS: &[&str] = &[
    "Requests",
    "Errors",
    "DurationSumNs",
    "DurationMinNs",
    "DurationMaxNs",
];

fn modify_codecs<'a>(columns: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    columns
        .map(|(c, codec)| format!("MODIFY COLUMN IF EXISTS {c} CODEC({codec})"))
        .collect::<Vec<_>>()
        .join(", ")
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
    fn the_call_copy_never_outlives_its_spans_and_always_expires() {
        // v11 as released.
        assert_eq!(v11_hours(&params(None, 7)), 49);
        assert_eq!(v11_hours(&params(None, 1)), 24);
        assert_eq!(v11_hours(&params(None, 0)), 49);
        let local = v11_calls_ttl(&params(None, 30)).join("\n");
        assert!(local.starts_with("ALTER TABLE orrery.orrery_span_calls MODIFY TTL"));
        assert!(local.contains("toIntervalHour(49)"));
        let cluster = v11_calls_ttl(&params(Some("c1"), 30)).join("\n");
        assert!(
            cluster.starts_with("ALTER TABLE orrery.orrery_span_calls_local ON CLUSTER c1 "),
            "{cluster}"
        );
    }

    #[test]
    fn v12_drops_call_rows_after_six_hours_by_row() {
        let local = v12_footprint(&params(None, 7));
        assert_eq!(
            local[0],
            "ALTER TABLE orrery.orrery_span_calls MODIFY SETTING ttl_only_drop_parts = 0, merge_with_ttl_timeout = 1800"
        );
        assert!(local[1].contains("MODIFY TTL toDateTime(Timestamp) + toIntervalHour(6)"));
        assert!(local[1].contains("materialize_ttl_after_modify = 0"));
        // Whatever the retention: 0 (forever) and the shortest (a day) alike.
        for days in [0, 1, 30] {
            assert_eq!(v12_footprint(&params(None, days)), local);
        }
        for s in v12_footprint(&params(Some("c1"), 7)) {
            assert!(s.starts_with("ALTER TABLE orrery."), "{s}");
            assert!(s.contains("_local ON CLUSTER c1 "), "{s}");
        }
    }

    #[test]
    fn v12_keeps_slot_markers_shorter_than_their_rows() {
        let all = v12_footprint(&params(None, 7));
        let ttl = |table: &str| {
            all.iter()
                .find(|s| s.contains(&format!("{table} MODIFY TTL")))
                .unwrap_or_else(|| panic!("{table}"))
                .clone()
        };
        assert!(ttl("orrery_graph_slots").contains("Slot + toIntervalHour(1)"));
        for rows in [
            "orrery_graph_edges_10s",
            "orrery_graph_nodes_10s",
            "orrery_span_slots",
        ] {
            assert!(ttl(rows).contains("Slot + toIntervalHour(2)"), "{rows}");
        }
        const { assert!(SLOT_MARKER_HOURS < SLOT_ROWS_HOURS) };
    }

    #[test]
    fn v12_changes_codecs_only() {
        let all = v12_footprint(&params(None, 7));
        let codecs: Vec<&String> = all.iter().filter(|s| s.contains("CODEC")).collect();
        assert_eq!(codecs.len(), ROLLUP_TABLES.len() + 1);
        for s in &codecs {
            // No type: a column keeps the type it has (older exporter tables differ).
            for clause in s.split(", MODIFY COLUMN IF EXISTS ").skip(1) {
                let (_, rest) = clause.split_once(' ').unwrap();
                assert!(rest.starts_with("CODEC("), "{clause}");
            }
        }
        let edges = codecs
            .iter()
            .find(|s| s.starts_with("ALTER TABLE orrery.orrery_graph_edges_1m "))
            .unwrap();
        assert!(edges.contains("MODIFY COLUMN IF EXISTS H63 CODEC(T64, ZSTD(3))"));
        assert!(edges.contains("MODIFY COLUMN IF EXISTS CalleeKind CODEC(ZSTD(3))"));
        assert!(edges.contains("MODIFY COLUMN IF EXISTS DurationMaxNs CODEC(ZSTD(3))"));
        let spans = codecs.last().unwrap();
        assert!(spans.starts_with(
            "ALTER TABLE orrery.otel_traces MODIFY COLUMN IF EXISTS Timestamp CODEC(Delta, ZSTD(3))"
        ));
        assert!(!spans.contains("TraceId"), "{spans}");
    }
}
