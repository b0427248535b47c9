//! Every schema version in order (append only) and the statements of each: the released
//! migrations' DDL must never change, since installs that ran it keep what it made.
//!
//! Each migration also says what a fresh install runs for it ([`Fresh`]): the baseline
//! (`super::baseline`, which reads this list) creates the current schema directly instead of
//! replaying history.

use super::ddl::*;
use super::{SchemaParams, checks, days, exporter, footprint, minutes, slots};

/// One schema version: a name and the statements that bring the schema to it.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: fn(&SchemaParams) -> Vec<String>,
    /// A query answering 1 when the migration took effect, for one whose statements another
    /// process running them at the same time could undo (then they run again).
    pub verify: Option<fn(&SchemaParams) -> String>,
    /// A scratch table name in the statements that each run replaces with a name of its own,
    /// so processes migrating at once never share (and swap in) each other's half-filled table.
    pub scratch: Option<&'static str>,
    /// What a fresh install runs for this migration (see `super::baseline`). A new migration
    /// is `Fresh::Same`: written once, it runs as is on fresh installs and upgrades alike.
    pub fresh: Fresh,
}

/// What the baseline (a fresh install) runs for one migration. Together, the fresh statements
/// of every migration in order make the same schema as replaying them all (tested in
/// `store/tests/schema_upgrade.rs`), without creating tables that a later version drops or
/// rebuilds.
#[derive(Clone, Copy)]
pub enum Fresh {
    /// The migration's own statements (every migration since the baseline was squashed).
    Same,
    /// These statements instead: the migration's tables created directly in their current
    /// shape, with what later migrations changed folded in (built by the same DDL builders).
    Instead(fn(&SchemaParams) -> Vec<String>),
    /// Nothing: a later migration drops what it made, or an earlier one's `Instead` already
    /// creates its result.
    Folded,
}

/// All migrations, in order. Append only: never edit a released migration, add a new one.
pub fn migrations() -> &'static [Migration] {
    &[
        Migration {
            version: 1,
            name: "otel_traces (OpenTelemetry exporter compatible) with trace-id lookup",
            statements: v1_otel_traces,
            verify: None,
            scratch: None,
            fresh: Fresh::Instead(v1_fresh),
        },
        Migration {
            version: 2,
            name: "service graph per-minute rollups",
            statements: v2_service_graph_rollups,
            verify: None,
            scratch: None,
            // Its tables are dropped by v6.
            fresh: Fresh::Folded,
        },
        Migration {
            version: 3,
            name: "otel_traces deduplicates retried inserts (collector insert_deduplication_token)",
            statements: v3_spans_insert_dedup,
            verify: None,
            scratch: None,
            // Its setting is in v1's fresh CREATE.
            fresh: Fresh::Folded,
        },
        Migration {
            version: 4,
            name: "time-ordered call columns and span counts per minute (materialized views)",
            statements: v4_call_table,
            verify: None,
            scratch: None,
            fresh: Fresh::Instead(v4_fresh),
        },
        Migration {
            version: 5,
            name: "service graph hourly rollups",
            statements: v5_hourly_rollups,
            verify: None,
            scratch: None,
            // Its tables are dropped by v6.
            fresh: Fresh::Folded,
        },
        Migration {
            version: 6,
            name: "service graph rollups with log-bucket latency histograms (replace v2/v5 tables)",
            statements: v6_histogram_rollups,
            verify: None,
            scratch: None,
            fresh: Fresh::Instead(v6_tables),
        },
        Migration {
            version: 7,
            name: "otel_traces_trace_id_ts in the exporter's current shape (DateTime, ORDER BY (TraceId, Start), ttl_only_drop_parts)",
            statements: exporter::v7_align_trace_id_ts,
            verify: Some(exporter::v7_verify),
            scratch: Some(exporter::V7_SCRATCH),
            // v1's fresh lookup table has this shape already.
            fresh: Fresh::Folded,
        },
        Migration {
            version: 8,
            name: "the materialized views' tables deduplicate retried inserts too",
            statements: v8_view_insert_dedup,
            verify: None,
            scratch: None,
            // Its settings are in v1's and v4's fresh CREATEs.
            fresh: Fresh::Folded,
        },
        Migration {
            version: 9,
            name: "check rule state and history (orrery_check_events)",
            statements: checks::check_events,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
        Migration {
            version: 10,
            name: "service graph 10-second rollup slots and span counts per slot",
            statements: slots::v10_rollup_slots,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
        Migration {
            version: 11,
            name: "the call copy orrery_span_calls expires after 49 hours (the rollups and otel_traces serve older windows)",
            statements: footprint::v11_calls_ttl,
            verify: None,
            scratch: None,
            // v12 sets the copy's TTL (and how it drops rows) again.
            fresh: Fresh::Folded,
        },
        Migration {
            version: 12,
            name: "footprint: call copy kept 6 hours and slots 1-2 hours by row TTL; ZSTD codecs for rollups and span columns",
            statements: footprint::v12_footprint,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
        Migration {
            version: 13,
            name: "service graph day rollups (edges, service edges, nodes per UTC day) and day markers",
            statements: days::v13_day_rollups,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
        Migration {
            version: 14,
            name: "footprint: minute rollups kept 26 hours (markers 25); hour markers record the span count they saw",
            statements: minutes::v14_minute_ttl,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
        Migration {
            version: 15,
            name: "day markers record the span count of their day and the hour either side",
            statements: days::v15_day_spans,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
        Migration {
            version: 16,
            name: "rollup computations carry a writer id (ComputedAt): the minute rollups' TTL reads their time through it",
            statements: minutes::v16_computed_at_writer,
            verify: None,
            scratch: None,
            fresh: Fresh::Same,
        },
    ]
}

/// A segment the collector inserted and then died before deleting is inserted again with the
/// same `insert_deduplication_token` (the ingest soak does exactly that). `otel_traces` drops the
/// repeat (v3), but each materialized view writes its own block into its own table, and a
/// non-replicated MergeTree deduplicates a view's block only within its own
/// `non_replicated_deduplication_window` — 0 by default, so the graph's call table and minute
/// counts took every replay again. Replicated tables deduplicate by default; the collector also
/// sends `deduplicate_blocks_in_dependent_materialized_views = 1`, which a cluster needs.
pub(crate) fn v8_view_insert_dedup(p: &SchemaParams) -> Vec<String> {
    if p.cluster.is_some() {
        return Vec::new();
    }
    [
        "orrery_span_calls",
        "orrery_span_minutes",
        "otel_traces_trace_id_ts",
    ]
    .iter()
    .map(|t| {
        format!(
            "ALTER TABLE {}.{t} MODIFY SETTING {DEDUP_WINDOW}",
            p.database
        )
    })
    .collect()
}

/// The collector retries a batch with the same `insert_deduplication_token`; a non-replicated
/// MergeTree only honours it within `non_replicated_deduplication_window` (0 by default).
/// Replicated tables deduplicate by default, so nothing is needed on a cluster.
pub(crate) fn v3_spans_insert_dedup(p: &SchemaParams) -> Vec<String> {
    if p.cluster.is_some() {
        return Vec::new();
    }
    vec![format!(
        "ALTER TABLE {}.otel_traces MODIFY SETTING {DEDUP_WINDOW}",
        p.database
    )]
}

pub(crate) const ATTR_MAP: &str = "Map(LowCardinality(String), String)";

pub(crate) fn v1_otel_traces(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let ids = p.storage_name("otel_traces_trace_id_ts");
    let mut out = vec![spans_table_ddl(p, false)];
    out.extend(p.distributed("otel_traces", "cityHash64(TraceId)"));
    // The exporter's lookup table of its first releases; v7 rebuilds it in the current shape.
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{ids}{oc} (
    TraceId String CODEC(ZSTD(1)),
    Start DateTime64(9) CODEC(Delta, ZSTD(1)),
    End DateTime64(9) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Start)
ORDER BY (TraceId, toUnixTimestamp(Start)){ttl}
SETTINGS index_granularity = 8192",
        engine = p.engine("MergeTree", &ids, None),
        ttl = p.ttl("toDateTime(Start)"),
    ));
    out.extend(p.distributed("otel_traces_trace_id_ts", "cityHash64(TraceId)"));
    out.push(trace_id_view_ddl(p));
    out
}

/// The spans table; `dedup`: with the insert-deduplication window v3 sets (see
/// [`SchemaParams::dedup_setting`]).
pub(crate) fn spans_table_ddl(p: &SchemaParams, dedup: bool) -> String {
    let db = &p.database;
    let oc = p.on_cluster();
    let spans = p.storage_name("otel_traces");
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{spans}{oc} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {ATTR_MAP} CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes {ATTR_MAP} CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes {ATTR_MAP}
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes {ATTR_MAP}
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp)){ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
        engine = p.engine("MergeTree", &spans, None),
        ttl = p.ttl("toDateTime(Timestamp)"),
        dedup = p.dedup_setting(dedup),
    )
}

/// The materialized view that fills the trace-id lookup table from the spans. On a cluster the
/// view reads the local spans and writes the local lookup table, so the lookup row lives on the
/// shard that holds the trace.
pub(crate) fn trace_id_view_ddl(p: &SchemaParams) -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}{oc} TO {db}.{ids}
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM {db}.{spans}
WHERE TraceId != ''
GROUP BY TraceId",
        db = p.database,
        oc = p.on_cluster(),
        ids = p.storage_name("otel_traces_trace_id_ts"),
        spans = p.storage_name("otel_traces"),
        mv = p.storage_name("otel_traces_trace_id_ts_mv"),
    )
}

/// Per-minute service-graph rollups, written by every query replica's rollup job (see
/// `orrery-query`'s `rollup` module). One computation of a minute writes all its edge and node
/// rows with the same `ComputedAt` (ms), then a row in `orrery_rollup_minutes` (the marker, with
/// the span count it saw and data-quality counts). Readers take, per minute, only the rows of the
/// latest marker's `ComputedAt`, so a recomputation that drops an edge (a client span whose
/// server span arrived late is no longer a virtual edge) is exact, and concurrent replicas
/// computing the same minute are harmless. ReplacingMergeTree collapses superseded rows.
pub(crate) fn v2_service_graph_rollups(p: &SchemaParams) -> Vec<String> {
    let mut out = rollup_tables(p, "Minute", "1m");
    out.push(minute_markers_ddl(p, "orrery_rollup_minutes"));
    out.extend(p.distributed("orrery_rollup_minutes", "toUnixTimestamp(Minute)"));
    out
}

/// Resource attributes kept in `orrery_span_calls.Resource`: the candidates for a node's region
/// (`--graph-region-attributes` must name only these) and its instance.
pub const CALL_RESOURCE_KEYS: &[&str] = &[
    "cloud.region",
    "cloud.availability_zone",
    "cloud.provider",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "deployment.environment.name",
    "deployment.environment",
    "service.namespace",
    "host.name",
    "service.instance.id",
];

/// `otel_traces` is ordered by `(ServiceName, SpanName, time)` (exporter compatible), so a time
/// range cannot be pruned by its key. The service graph and its rollup therefore read a narrow,
/// time-ordered copy of the columns they need, `orrery_span_calls`, filled by a materialized view
/// (so spans from any writer, the exporter's too, land there). Span and parent ids become 64-bit
/// hashes of `(TraceId, SpanId)`: 16 bytes a span instead of ~35 for the hex strings, and a
/// cheaper join. `orrery_span_minutes` counts spans per minute (the rollup's change detector)
/// without reading spans. On a cluster both views write the shard-local tables, so the spans of
/// one trace (sharded by `cityHash64(TraceId)`) and their call rows stay on one shard.
/// Spans stored before this migration are not copied (their minutes keep the rollups made then).
pub(crate) fn v4_call_table(p: &SchemaParams) -> Vec<String> {
    call_tables(p, false)
}

/// v4's tables and views; `dedup`: the tables with the insert-deduplication window v8 sets.
pub(crate) fn call_tables(p: &SchemaParams, dedup: bool) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let spans = p.storage_name("otel_traces");
    let calls = p.storage_name("orrery_span_calls");
    let counts = p.storage_name("orrery_span_minutes");
    let keys = CALL_RESOURCE_KEYS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.{calls}{oc} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    SpanKey UInt64 CODEC(ZSTD(1)),
    ParentKey UInt64 CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusError UInt8 CODEC(ZSTD(1)),
    HttpStatus UInt16 CODEC(ZSTD(1)),
    Virtual LowCardinality(String) CODEC(ZSTD(1)),
    Resource Map(LowCardinality(String), String) CODEC(ZSTD(1))
) ENGINE = {engine}
PARTITION BY toDate(Timestamp)
ORDER BY Timestamp{ttl}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
        engine = p.engine("MergeTree", &calls, None),
        ttl = p.ttl("toDateTime(Timestamp)"),
        dedup = p.dedup_setting(dedup),
    )];
    // Read only: the view fills the local tables, so the key is never used for inserts.
    out.extend(p.distributed("orrery_span_calls", "rand()"));
    // The rules that make a span a call live in `graph_rules`, next to every query applying them.
    out.push(crate::graph_rules::call_view_ddl(
        db,
        &p.storage_name("orrery_span_calls_mv"),
        &oc,
        &calls,
        &spans,
        &keys,
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{counts}{oc} (
    Minute DateTime CODEC(Delta, ZSTD(1)),
    Spans UInt64
) ENGINE = {engine}
PARTITION BY toDate(Minute)
ORDER BY Minute{ttl}{settings}",
        engine = p.engine("SummingMergeTree", &counts, None),
        ttl = p.ttl("Minute"),
        // No SETTINGS clause in v4's text: v8 set the window later.
        settings = p.dedup_setting(dedup).replacen(", ", "\nSETTINGS ", 1),
    ));
    out.extend(p.distributed("orrery_span_minutes", "rand()"));
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}{oc} TO {db}.{counts}
AS SELECT toStartOfMinute(toDateTime(Timestamp)) AS Minute, count() AS Spans
FROM {db}.{spans}
GROUP BY Minute",
        mv = p.storage_name("orrery_span_minutes_mv"),
    ));
    out
}

/// Hourly service-graph rollups, merged from the minute rollups of a closed hour (a 24 h window
/// then merges 24 digests per edge instead of 1,440). `orrery_rollup_hours.MinutesVersion` is the
/// sum of the latest `ComputedAt` of the hour's minutes the rows were made from: readers use an
/// hour only while that still matches (a recomputed minute makes it stale until the next run).
pub(crate) fn v5_hourly_rollups(p: &SchemaParams) -> Vec<String> {
    let mut out = rollup_tables(p, "Hour", "1h");
    out.push(hour_markers_ddl(p, "orrery_rollup_hours"));
    out.extend(p.distributed("orrery_rollup_hours", "toUnixTimestamp(Hour)"));
    out
}

/// The edge and node rollup tables at one granularity (`time`: the bucket column, `suffix`: the
/// table names' `_1m`/`_1h`); minute and hour rollups have the same shape.
pub(crate) fn rollup_tables(p: &SchemaParams, time: &str, suffix: &str) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let (edges_name, nodes_name) = (
        format!("orrery_edges_{suffix}"),
        format!("orrery_nodes_{suffix}"),
    );
    let edges = p.storage_name(&edges_name);
    let nodes = p.storage_name(&nodes_name);
    let digest = "AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt64)";
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.{edges}{oc} (
    {time} DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
    Caller LowCardinality(String),
    Callee LowCardinality(String),
    CallerRegion LowCardinality(String),
    CalleeRegion LowCardinality(String),
    CalleeKind LowCardinality(String),
    Requests UInt64,
    Errors UInt64,
    DurationSumNs UInt64,
    LatencyDigest {digest},
    LatencyBuckets Array(UInt64)
) ENGINE = {engine}
PARTITION BY toDate({time})
ORDER BY ({time}, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind){ttl}",
        engine = p.engine("ReplacingMergeTree", &edges, Some("ComputedAt")),
        ttl = p.ttl(time),
    )];
    out.extend(p.distributed(&edges_name, "cityHash64(Caller, Callee)"));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{nodes}{oc} (
    {time} DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
    Service LowCardinality(String),
    Region LowCardinality(String),
    Instance LowCardinality(String),
    Requests UInt64,
    Errors UInt64,
    DurationSumNs UInt64,
    LatencyDigest {digest},
    LatencyBuckets Array(UInt64)
) ENGINE = {engine}
PARTITION BY toDate({time})
ORDER BY ({time}, Service, Region, Instance){ttl}",
        engine = p.engine("ReplacingMergeTree", &nodes, Some("ComputedAt")),
        ttl = p.ttl(time),
    ));
    out.extend(p.distributed(&nodes_name, "cityHash64(Service)"));
    out
}

/// Service-graph rollups whose latency is a fixed log-bucket histogram (`crate::latency`)
/// instead of a t-digest state: merging a window becomes column sums (several times faster),
/// and histograms merge outside ClickHouse too. New table names, so processes of the previous
/// version never read rows of the new shape; the v2/v5 tables are dropped (rollups are derived
/// data: the rollup job recomputes its backfill window from spans, and minutes without a
/// rollup are computed from spans when read).
pub(crate) fn v6_histogram_rollups(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let mut out = Vec::new();
    for t in [
        "orrery_edges_1m",
        "orrery_nodes_1m",
        "orrery_rollup_minutes",
        "orrery_edges_1h",
        "orrery_nodes_1h",
        "orrery_rollup_hours",
    ] {
        if p.cluster.is_some() {
            out.push(format!("DROP TABLE IF EXISTS {db}.{t}{oc} SYNC"));
        }
        out.push(format!(
            "DROP TABLE IF EXISTS {db}.{}{oc} SYNC",
            p.storage_name(t)
        ));
    }
    out.extend(v6_tables(p));
    out
}

/// v6's tables (what a fresh install runs for v6: there is nothing of v2/v5 to drop).
pub(crate) fn v6_tables(p: &SchemaParams) -> Vec<String> {
    let mut out = Vec::new();
    for (time, suffix) in [("Minute", "1m"), ("Hour", "1h")] {
        out.extend(histogram_rollup_tables(p, time, suffix));
    }
    // The hourly edges once more without the region split (regions multiply an hour's rows
    // ~3x): what the default service-level map reads for whole hours. Its region columns hold
    // one of the edge's regions.
    out.push(histogram_table_ddl(
        p,
        "orrery_graph_services_1h",
        "Hour",
        EDGE_KEYS,
        "Hour, Caller, Callee, CalleeKind",
    ));
    out.extend(p.distributed("orrery_graph_services_1h", "cityHash64(Caller, Callee)"));
    out.push(minute_markers_ddl(p, "orrery_graph_minutes"));
    out.extend(p.distributed("orrery_graph_minutes", "toUnixTimestamp(Minute)"));
    out.push(hour_markers_ddl(p, "orrery_graph_hours"));
    out.extend(p.distributed("orrery_graph_hours", "toUnixTimestamp(Hour)"));
    out
}

/// Statements that create the migrations ledger.
pub(crate) fn ledger(p: &SchemaParams) -> Vec<String> {
    vec![
        format!(
            "CREATE DATABASE IF NOT EXISTS {}{}",
            p.database,
            p.on_cluster()
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.orrery_schema_migrations{oc} (
    Version UInt32,
    Name String,
    AppliedAt DateTime DEFAULT now()
) ENGINE = {engine}
ORDER BY Version",
            db = p.database,
            oc = p.on_cluster(),
            engine = p.engine("ReplacingMergeTree", "orrery_schema_migrations", None),
        ),
    ]
}

/// v1 on a fresh install: the spans table with v3's deduplication window, the trace-id lookup
/// already in v7's shape with v8's window, and the view that fills it.
fn v1_fresh(p: &SchemaParams) -> Vec<String> {
    let mut out = vec![spans_table_ddl(p, true)];
    out.extend(p.distributed("otel_traces", "cityHash64(TraceId)"));
    out.push(exporter::trace_id_ts_ddl(
        p,
        &p.storage_name("otel_traces_trace_id_ts"),
        true,
    ));
    out.extend(p.distributed("otel_traces_trace_id_ts", "cityHash64(TraceId)"));
    out.push(trace_id_view_ddl(p));
    out
}

/// v4 on a fresh install: the call table and minute counts with v8's deduplication window.
fn v4_fresh(p: &SchemaParams) -> Vec<String> {
    call_tables(p, true)
}

/// The DDL of replaying every migration in order (what an install that started at version 0
/// and upgraded through every release ran).
pub fn replay_ddl(p: &SchemaParams) -> Vec<String> {
    let mut out = ledger(p);
    for m in migrations() {
        out.extend((m.statements)(p));
    }
    out
}

/// The latest schema version this build knows.
pub fn latest_version() -> u32 {
    migrations().last().map(|m| m.version).unwrap_or(0)
}
