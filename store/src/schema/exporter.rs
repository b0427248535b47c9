//! Compatibility with tables made by the OpenTelemetry Collector ClickHouse exporter
//! (opentelemetry-collector-contrib `exporter/clickhouseexporter`) of every release:
//!
//! - migration 7 rebuilds `otel_traces_trace_id_ts` in the exporter's current shape
//!   (`Start`/`End DateTime`, `ORDER BY (TraceId, Start)`, `ttl_only_drop_parts = 1`; its
//!   `internal/sql_templates/traces_id_ts_lookup_table.sql`), copying the lookup rows and
//!   exchanging the new table into place;
//! - [`resolve_span_columns`] reads `otel_traces`'s columns once at start and builds the select
//!   list span reads use, so a table made by an older exporter release (`Duration Int64`, no
//!   `ScopeName`/`ScopeVersion`, `Map(String, String)` attributes) is read with casts and
//!   defaults instead of failing row validation.

use std::sync::RwLock;

use anyhow::{Context, Result};
use clickhouse::Row;
use serde::Deserialize;

use super::SchemaParams;

/// `otel_traces` columns as [`crate::SpanRow`] reads them, in its field order, with the type
/// it expects and the value a missing column reads as.
pub const SPAN_COLUMNS: &[(&str, &str, &str)] = &[
    ("Timestamp", "DateTime64(9)", "0"),
    ("TraceId", "String", "''"),
    ("SpanId", "String", "''"),
    ("ParentSpanId", "String", "''"),
    ("TraceState", "String", "''"),
    ("SpanName", "LowCardinality(String)", "''"),
    ("SpanKind", "LowCardinality(String)", "''"),
    ("ServiceName", "LowCardinality(String)", "''"),
    (
        "ResourceAttributes",
        "Map(LowCardinality(String), String)",
        "map()",
    ),
    ("ScopeName", "String", "''"),
    ("ScopeVersion", "String", "''"),
    (
        "SpanAttributes",
        "Map(LowCardinality(String), String)",
        "map()",
    ),
    ("Duration", "UInt64", "0"),
    ("StatusCode", "LowCardinality(String)", "''"),
    ("StatusMessage", "String", "''"),
    ("Events.Timestamp", "Array(DateTime64(9))", "[]"),
    ("Events.Name", "Array(LowCardinality(String))", "[]"),
    (
        "Events.Attributes",
        "Array(Map(LowCardinality(String), String))",
        "[]",
    ),
    ("Links.TraceId", "Array(String)", "[]"),
    ("Links.SpanId", "Array(String)", "[]"),
    ("Links.TraceState", "Array(String)", "[]"),
    (
        "Links.Attributes",
        "Array(Map(LowCardinality(String), String))",
        "[]",
    ),
];

/// The type with `LowCardinality(...)` wrappers removed: they change storage, not the values
/// read, so they never need a cast.
fn plain(t: &str) -> String {
    let mut s = t.replace(' ', "");
    while let Some(i) = s.find("LowCardinality(") {
        let inner_start = i + "LowCardinality(".len();
        let mut depth = 1;
        let mut end = inner_start;
        for (j, c) in s[inner_start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = inner_start + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = format!("{}{}{}", &s[..i], &s[inner_start..end], &s[end + 1..]);
    }
    s
}

/// The select list for `SpanRow` given the table's `(name, type)` columns: a column of the
/// expected type as is, another type cast, a missing column as its default. Names and types
/// come from the server's catalogue and [`SPAN_COLUMNS`], never from a request.
pub fn span_select_for(columns: &[(String, String)]) -> String {
    SPAN_COLUMNS
        .iter()
        .map(
            |(name, want, default)| match columns.iter().find(|(n, _)| n == name) {
                Some((_, have)) if plain(have) == plain(want) => format!("`{name}`"),
                Some(_) => format!("CAST(`{name}` AS {want}) AS `{name}`"),
                None => format!("CAST({default} AS {want}) AS `{name}`"),
            },
        )
        .collect::<Vec<_>>()
        .join(", ")
}

static SPAN_SELECT: RwLock<Option<String>> = RwLock::new(None);

/// The select list span reads use (`SELECT {span_select()} FROM otel_traces …`): the one
/// [`resolve_span_columns`] found, else the current exporter shape's plain column list.
pub fn span_select() -> String {
    if let Some(s) = SPAN_SELECT.read().ok().and_then(|g| g.clone()) {
        return s;
    }
    SPAN_COLUMNS
        .iter()
        .map(|(n, _, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Row, Deserialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// Reads `otel_traces`'s columns (the database the client is bound to) and sets the select list
/// span reads use for this process; logs what differs from the current exporter shape. One
/// process reads one database, so the list is process-wide.
pub async fn resolve_span_columns(client: &clickhouse::Client) -> Result<Vec<String>> {
    let cols: Vec<Column> = client
        .query(
            "SELECT name, type FROM system.columns
             WHERE database = currentDatabase() AND table = 'otel_traces' ORDER BY position",
        )
        .fetch_all()
        .await
        .context("reading otel_traces columns")?;
    let cols: Vec<(String, String)> = cols.into_iter().map(|c| (c.name, c.ty)).collect();
    let mut differences = Vec::new();
    for (name, want, _) in SPAN_COLUMNS {
        match cols.iter().find(|(n, _)| n == name) {
            Some((_, have)) if plain(have) != plain(want) => {
                differences.push(format!("{name} is {have} (read as {want})"))
            }
            None => differences.push(format!("{name} is missing (read as empty)")),
            _ => {}
        }
    }
    if !cols.is_empty() && !differences.is_empty() {
        tracing::info!(
            differences = %differences.join("; "),
            "otel_traces was made by an older exporter release: reading it with casts and defaults"
        );
    }
    if let Ok(mut g) = SPAN_SELECT.write() {
        *g = Some(span_select_for(&cols));
    }
    Ok(differences)
}

/// The scratch table of migration 7; `migrate` gives each run its own name (a suffix).
pub const V7_SCRATCH: &str = "otel_traces_trace_id_ts_v7";

/// Migration 7: `otel_traces_trace_id_ts` in the exporter's current shape. A new table is
/// filled from the old one (through Distributed tables on a cluster, so each row lands on its
/// trace's shard) and swapped in with one atomic `EXCHANGE TABLES`; the materialized view
/// writes to its target by name, so it carries on into the new table untouched.
///
/// Several processes may migrate at once: each run fills its own scratch table
/// ([`V7_SCRATCH`] plus a per-run suffix), so every table swapped in is a complete new-shape
/// copy and the old shape can never come back; [`v7_verify`] checks the result anyway. Rows
/// the view writes into a table in the seconds before it is swapped out are lost with it
/// (Orrery never reads this table). A run that crashes leaves its scratch table behind.
pub fn v7_align_trace_id_ts(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let ids = p.storage_name("otel_traces_trace_id_ts");
    let new = p.storage_name("otel_traces_trace_id_ts_v7");
    let mut out = vec![trace_id_ts_ddl(p, &new, false)];
    out.extend(p.distributed("otel_traces_trace_id_ts_v7", "cityHash64(TraceId)"));
    // On a cluster both names are Distributed tables: the copy reads every shard and writes
    // each row to its trace's shard, synchronously so the exchange below sees it.
    out.push(format!(
        "INSERT INTO {db}.otel_traces_trace_id_ts_v7 (TraceId, Start, End)
SELECT TraceId, toDateTime(Start), toDateTime(End) FROM {db}.otel_traces_trace_id_ts
SETTINGS insert_distributed_sync = 1"
    ));
    out.push(format!("EXCHANGE TABLES {db}.{ids} AND {db}.{new}{oc}"));
    out.push(format!("DROP TABLE IF EXISTS {db}.{new}{oc} SYNC"));
    if p.cluster.is_some() {
        // The Distributed tables were made `AS` the old local table: remake the front.
        out.push(format!(
            "DROP TABLE IF EXISTS {db}.otel_traces_trace_id_ts_v7{oc} SYNC"
        ));
        out.push(format!(
            "DROP TABLE IF EXISTS {db}.otel_traces_trace_id_ts{oc} SYNC"
        ));
        out.extend(p.distributed("otel_traces_trace_id_ts", "cityHash64(TraceId)"));
    }
    out
}

/// The trace-id lookup table in the exporter's current shape, as table `table` (a storage
/// name: v7's scratch table, or the lookup table itself in the baseline); `dedup`: with the
/// insert-deduplication window v8 sets.
pub(super) fn trace_id_ts_ddl(p: &SchemaParams, table: &str, dedup: bool) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table}{oc} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start){ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
        db = p.database,
        oc = p.on_cluster(),
        engine = p.engine("MergeTree", table, None),
        ttl = p.ttl("Start"),
        dedup = p.dedup_setting(dedup),
    )
}

/// 1 when migration 7 took effect: the lookup table's `Start` is a `DateTime`.
pub fn v7_verify(p: &SchemaParams) -> String {
    format!(
        "SELECT toUInt8(count() = 1) FROM system.columns WHERE database = '{}' \
         AND table = '{}' AND name = 'Start' AND type = 'DateTime'",
        p.database,
        p.storage_name("otel_traces_trace_id_ts")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_shapes_get_casts_and_defaults_current_shape_reads_plainly() {
        let current: Vec<(String, String)> = SPAN_COLUMNS
            .iter()
            .map(|(n, t, _)| (n.to_string(), t.to_string()))
            .collect();
        let sel = span_select_for(&current);
        assert!(!sel.contains("CAST"), "{sel}");
        let mut old: Vec<(String, String)> = current
            .iter()
            .filter(|(n, _)| !n.starts_with("Scope"))
            .cloned()
            .collect();
        for (n, t) in &mut old {
            if n == "Duration" {
                *t = "Int64".into();
            }
            if n == "SpanAttributes" {
                *t = "Map(String, String)".into();
            }
        }
        let sel = span_select_for(&old);
        assert!(
            sel.contains("CAST(`Duration` AS UInt64) AS `Duration`"),
            "{sel}"
        );
        assert!(sel.contains("CAST('' AS String) AS `ScopeName`"), "{sel}");
        assert!(
            sel.contains("`SpanAttributes`,"),
            "LowCardinality keys need no cast: {sel}"
        );
        assert_eq!(
            plain("Array(Map(LowCardinality(String), String))"),
            "Array(Map(String,String))"
        );
    }
}
