//! The schema and its versioned migrations.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so a migration interrupted half way, or two
//! processes migrating at once, end in the same schema. Applied versions are recorded in
//! `orrery_schema_migrations` (a ReplacingMergeTree, so concurrent records collapse).
//!
//! The spans table and its trace-id lookup are column-for-column the OpenTelemetry Collector
//! ClickHouse exporter's `otel_traces` and `otel_traces_trace_id_ts` (+ materialized view), so
//! Orrery can read tables that exporter fills and Grafana's ClickHouse data source reads ours.
//!
//! With a cluster name the same migrations create `*_local` ReplicatedMergeTree tables
//! `ON CLUSTER` and Distributed tables under the exporter's names, sharded by trace id so that
//! all spans of one trace (and thus the service-graph pairing) stay on one shard.

use anyhow::{Context, Result, bail};

use crate::ClickHouseArgs;

mod checks;
mod exporter;
mod slots;
pub use checks::CHECK_EVENTS;
pub use exporter::{SPAN_COLUMNS, resolve_span_columns, span_select, span_select_for};

/// Where a schema is created: database, retention, optional cluster.
#[derive(Debug, Clone)]
pub struct SchemaParams {
    pub database: String,
    /// Days to keep; 0 = forever.
    pub retention_days: u32,
    pub cluster: Option<String>,
}

impl SchemaParams {
    pub fn from_args(args: &ClickHouseArgs) -> Result<Self> {
        let params = Self {
            database: args.clickhouse_database.clone(),
            retention_days: args.retention_days,
            cluster: args.clickhouse_cluster.clone(),
        };
        params.validate()?;
        Ok(params)
    }

    /// Names go into DDL text (DDL cannot take bound parameters), so they must be plain
    /// identifiers. They come from the operator's configuration, never from a request.
    pub fn validate(&self) -> Result<()> {
        check_identifier("database", &self.database)?;
        if let Some(cluster) = &self.cluster {
            check_identifier("cluster", cluster)?;
        }
        Ok(())
    }

    fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(c) => format!(" ON CLUSTER {c}"),
            None => String::new(),
        }
    }

    /// Name of the table that holds the data: `<name>_local` on a cluster, else `<name>`.
    fn storage_name(&self, name: &str) -> String {
        if self.cluster.is_some() {
            format!("{name}_local")
        } else {
            name.to_string()
        }
    }

    /// Engine clause for a data table, replicated on a cluster.
    /// `version` is the ReplacingMergeTree version column, if any.
    fn engine(&self, kind: &str, table: &str, version: Option<&str>) -> String {
        let version = version.map(|v| format!(", {v}")).unwrap_or_default();
        match &self.cluster {
            Some(_) => format!(
                "Replicated{kind}('/clickhouse/tables/{{shard}}/{}/{table}', '{{replica}}'{version})",
                self.database
            ),
            None => format!("{kind}({})", version.trim_start_matches(", ")),
        }
    }

    fn ttl(&self, column_expr: &str) -> String {
        if self.retention_days == 0 {
            String::new()
        } else {
            format!(
                "\nTTL {column_expr} + toIntervalDay({})",
                self.retention_days
            )
        }
    }

    /// On a cluster, the Distributed table `name` in front of `name_local`, sharded by
    /// `sharding_key`. Nothing on a single node.
    fn distributed(&self, name: &str, sharding_key: &str) -> Vec<String> {
        match &self.cluster {
            Some(cluster) => vec![format!(
                "CREATE TABLE IF NOT EXISTS {db}.{name}{oc} AS {db}.{name}_local\n\
                 ENGINE = Distributed('{cluster}', '{db}', '{name}_local', {sharding_key})",
                db = self.database,
                oc = self.on_cluster(),
            )],
            None => Vec::new(),
        }
    }
}

fn check_identifier(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        bail!(
            "{what} name {value:?} must be an identifier: letters, digits and '_', not starting with a digit"
        );
    }
    Ok(())
}

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
        },
        Migration {
            version: 2,
            name: "service graph per-minute rollups",
            statements: v2_service_graph_rollups,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 3,
            name: "otel_traces deduplicates retried inserts (collector insert_deduplication_token)",
            statements: v3_spans_insert_dedup,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 4,
            name: "time-ordered call columns and span counts per minute (materialized views)",
            statements: v4_call_table,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 5,
            name: "service graph hourly rollups",
            statements: v5_hourly_rollups,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 6,
            name: "service graph rollups with log-bucket latency histograms (replace v2/v5 tables)",
            statements: v6_histogram_rollups,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 7,
            name: "otel_traces_trace_id_ts in the exporter's current shape (DateTime, ORDER BY (TraceId, Start), ttl_only_drop_parts)",
            statements: exporter::v7_align_trace_id_ts,
            verify: Some(exporter::v7_verify),
            scratch: Some(exporter::V7_SCRATCH),
        },
        Migration {
            version: 8,
            name: "the materialized views' tables deduplicate retried inserts too",
            statements: v8_view_insert_dedup,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 9,
            name: "check rule state and history (orrery_check_events)",
            statements: checks::check_events,
            verify: None,
            scratch: None,
        },
        Migration {
            version: 10,
            name: "service graph 10-second rollup slots and span counts per slot",
            statements: slots::v10_rollup_slots,
            verify: None,
            scratch: None,
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
fn v8_view_insert_dedup(p: &SchemaParams) -> Vec<String> {
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
            "ALTER TABLE {}.{t} MODIFY SETTING non_replicated_deduplication_window = 10000",
            p.database
        )
    })
    .collect()
}

/// The collector retries a batch with the same `insert_deduplication_token`; a non-replicated
/// MergeTree only honours it within `non_replicated_deduplication_window` (0 by default).
/// Replicated tables deduplicate by default, so nothing is needed on a cluster.
fn v3_spans_insert_dedup(p: &SchemaParams) -> Vec<String> {
    if p.cluster.is_some() {
        return Vec::new();
    }
    vec![format!(
        "ALTER TABLE {}.otel_traces MODIFY SETTING non_replicated_deduplication_window = 10000",
        p.database
    )]
}

const ATTR_MAP: &str = "Map(LowCardinality(String), String)";

fn v1_otel_traces(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let spans = p.storage_name("otel_traces");
    let ids = p.storage_name("otel_traces_trace_id_ts");
    let mut out = vec![format!(
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
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
        engine = p.engine("MergeTree", &spans, None),
        ttl = p.ttl("toDateTime(Timestamp)"),
    )];
    out.extend(p.distributed("otel_traces", "cityHash64(TraceId)"));
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
    // On a cluster the view reads the local spans and writes the local lookup table, so the
    // lookup row lives on the shard that holds the trace.
    out.push(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv}{oc} TO {db}.{ids}
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM {db}.{spans}
WHERE TraceId != ''
GROUP BY TraceId",
        mv = p.storage_name("otel_traces_trace_id_ts_mv"),
    ));
    out
}

/// Per-minute service-graph rollups, written by every query replica's rollup job (see
/// `orrery-query`'s `rollup` module). One computation of a minute writes all its edge and node
/// rows with the same `ComputedAt` (ms), then a row in `orrery_rollup_minutes` (the marker, with
/// the span count it saw and data-quality counts). Readers take, per minute, only the rows of the
/// latest marker's `ComputedAt`, so a recomputation that drops an edge (a client span whose
/// server span arrived late is no longer a virtual edge) is exact, and concurrent replicas
/// computing the same minute are harmless. ReplacingMergeTree collapses superseded rows.
fn v2_service_graph_rollups(p: &SchemaParams) -> Vec<String> {
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
fn v4_call_table(p: &SchemaParams) -> Vec<String> {
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
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
        engine = p.engine("MergeTree", &calls, None),
        ttl = p.ttl("toDateTime(Timestamp)"),
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
ORDER BY Minute{ttl}",
        engine = p.engine("SummingMergeTree", &counts, None),
        ttl = p.ttl("Minute"),
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
fn v5_hourly_rollups(p: &SchemaParams) -> Vec<String> {
    let mut out = rollup_tables(p, "Hour", "1h");
    out.push(hour_markers_ddl(p, "orrery_rollup_hours"));
    out.extend(p.distributed("orrery_rollup_hours", "toUnixTimestamp(Hour)"));
    out
}

/// The edge and node rollup tables at one granularity (`time`: the bucket column, `suffix`: the
/// table names' `_1m`/`_1h`); minute and hour rollups have the same shape.
fn rollup_tables(p: &SchemaParams, time: &str, suffix: &str) -> Vec<String> {
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
fn v6_histogram_rollups(p: &SchemaParams) -> Vec<String> {
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

/// A table of minute markers (the rollup's: latest computation, span and data-quality counts).
fn minute_markers_ddl(p: &SchemaParams, name: &str) -> String {
    let table = p.storage_name(name);
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table}{oc} (
    Minute DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
    Spans UInt64,
    Orphans UInt64,
    Unmatched UInt64,
    Late UInt64
) ENGINE = {engine}
PARTITION BY toDate(Minute)
ORDER BY Minute{ttl}",
        db = p.database,
        oc = p.on_cluster(),
        engine = p.engine("ReplacingMergeTree", &table, Some("ComputedAt")),
        ttl = p.ttl("Minute"),
    )
}

/// A table of hour markers (the minute computations an hour's rows were made from).
fn hour_markers_ddl(p: &SchemaParams, name: &str) -> String {
    let table = p.storage_name(name);
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table}{oc} (
    Hour DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
    MinutesVersion UInt64
) ENGINE = {engine}
PARTITION BY toDate(Hour)
ORDER BY Hour{ttl}",
        db = p.database,
        oc = p.on_cluster(),
        engine = p.engine("ReplacingMergeTree", &table, Some("ComputedAt")),
        ttl = p.ttl("Hour"),
    )
}

/// The value columns of a v6 rollup table: counts, duration sum/min/max, histogram.
fn histogram_value_columns_ddl() -> String {
    format!(
        "    Requests UInt64,
    Errors UInt64,
    DurationSumNs UInt64,
    DurationMinNs UInt64,
    DurationMaxNs UInt64,
{}",
        crate::latency::columns_ddl()
    )
}

/// A v6 rollup table `name` (its local table on a cluster): time column `time`, then the
/// `keys` (low-cardinality strings), then the value columns.
fn histogram_table_ddl(
    p: &SchemaParams,
    name: &str,
    time: &str,
    keys: &[&str],
    order_by: &str,
) -> String {
    let keys: String = keys
        .iter()
        .map(|k| format!("    {k} LowCardinality(String),\n"))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table}{oc} (
    {time} DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
{keys}{counts}
) ENGINE = {engine}
PARTITION BY toDate({time})
ORDER BY ({order_by}){ttl}",
        db = p.database,
        table = p.storage_name(name),
        oc = p.on_cluster(),
        counts = histogram_value_columns_ddl(),
        engine = p.engine(
            "ReplacingMergeTree",
            &p.storage_name(name),
            Some("ComputedAt")
        ),
        ttl = p.ttl(time),
    )
}

/// The key columns of a v6 edge table.
const EDGE_KEYS: &[&str] = &[
    "Caller",
    "Callee",
    "CallerRegion",
    "CalleeRegion",
    "CalleeKind",
];

/// Edge and node rollup tables of schema v6 at one granularity (`Minute`/`1m`, `Hour`/`1h`).
fn histogram_rollup_tables(p: &SchemaParams, time: &str, suffix: &str) -> Vec<String> {
    let (edges, nodes) = (
        format!("orrery_graph_edges_{suffix}"),
        format!("orrery_graph_nodes_{suffix}"),
    );
    let mut out = vec![histogram_table_ddl(
        p,
        &edges,
        time,
        EDGE_KEYS,
        &format!("{time}, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind"),
    )];
    out.extend(p.distributed(&edges, "cityHash64(Caller, Callee)"));
    out.push(histogram_table_ddl(
        p,
        &nodes,
        time,
        &["Service", "Region", "Instance"],
        &format!("{time}, Service, Region, Instance"),
    ));
    out.extend(p.distributed(&nodes, "cityHash64(Service)"));
    out
}

/// Statements that create the migrations ledger.
fn ledger(p: &SchemaParams) -> Vec<String> {
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

/// The full DDL for these parameters, in order, as `orrery migrate --print` shows it (and as
/// `deploy/clickhouse/` ships it for the cluster variant).
pub fn full_ddl(p: &SchemaParams) -> Vec<String> {
    let mut out = ledger(p);
    for m in migrations() {
        out.extend((m.statements)(p));
    }
    out
}

/// What `migrate` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<u32>,
    pub already: Vec<u32>,
}

/// Brings the schema to the latest version. `client` must not be bound to a database that
/// may not exist yet.
pub async fn migrate(client: &clickhouse::Client, p: &SchemaParams) -> Result<MigrateReport> {
    p.validate()?;
    for stmt in ledger(p) {
        exec(client, &stmt).await?;
    }
    let done: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT Version FROM {}.orrery_schema_migrations ORDER BY Version",
            p.database
        ))
        .fetch_all()
        .await
        .context("reading applied schema versions")?;
    let mut report = MigrateReport::default();
    for m in migrations() {
        if done.contains(&m.version) {
            report.already.push(m.version);
            continue;
        }
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying schema migration"
        );
        let mut attempt = 1;
        loop {
            let run = scratch_suffix();
            for stmt in (m.statements)(p) {
                let stmt = match m.scratch {
                    Some(name) => stmt.replace(name, &format!("{name}_{run}")),
                    None => stmt,
                };
                exec(client, &stmt).await?;
            }
            let Some(verify) = m.verify else { break };
            let ok: u8 = client
                .query(&verify(p))
                .fetch_one()
                .await
                .with_context(|| format!("verifying schema version {}", m.version))?;
            if ok == 1 {
                break;
            }
            if attempt == 3 {
                bail!(
                    "schema version {} did not take effect after {attempt} attempts (another \
                     process migrating at the same time?): start again",
                    m.version
                );
            }
            tracing::warn!(
                version = m.version,
                attempt,
                "schema migration undone by a concurrent migrator: running it again"
            );
            attempt += 1;
        }
        client
            .query(&format!(
                "INSERT INTO {}.orrery_schema_migrations (Version, Name) VALUES (?, ?)",
                p.database
            ))
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await
            .with_context(|| format!("recording schema version {}", m.version))?;
        report.applied.push(m.version);
    }
    Ok(report)
}

/// Unique per migration run in this and any other process: pid, time, a counter.
fn scratch_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

async fn exec(client: &clickhouse::Client, stmt: &str) -> Result<()> {
    client
        .query(stmt)
        .execute()
        .await
        .with_context(|| format!("executing DDL: {}", first_line(stmt)))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The latest schema version this build knows.
pub fn latest_version() -> u32 {
    migrations().last().map(|m| m.version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(cluster: Option<&str>) -> SchemaParams {
        SchemaParams {
            database: "orrery".into(),
            retention_days: 3,
            cluster: cluster.map(String::from),
        }
    }

    #[test]
    fn rejects_names_that_are_not_identifiers() {
        let mut p = params(None);
        p.database = "orrery; DROP TABLE x".into();
        assert!(p.validate().is_err());
        let mut p = params(Some("c-1"));
        p.database = "ok".into();
        assert!(p.validate().is_err());
        assert!(params(Some("prod_cluster")).validate().is_ok());
    }

    #[test]
    fn single_node_ddl_uses_exporter_names_and_ttl() {
        let ddl = full_ddl(&params(None)).join(";\n");
        assert!(ddl.contains("CREATE TABLE IF NOT EXISTS orrery.otel_traces ("));
        assert!(ddl.contains("toIntervalDay(3)"));
        assert!(!ddl.contains("Distributed"));
        assert!(!ddl.contains("_local"));
    }

    #[test]
    fn cluster_ddl_is_replicated_distributed_and_sharded_by_trace_id() {
        let ddl = full_ddl(&params(Some("orrery_cluster")));
        let all = ddl.join(";\n");
        assert!(all.contains("orrery.otel_traces_local ON CLUSTER orrery_cluster"));
        assert!(all.contains("ReplicatedMergeTree('/clickhouse/tables/{shard}/orrery/otel_traces_local', '{replica}')"));
        assert!(all.contains(
            "Distributed('orrery_cluster', 'orrery', 'otel_traces_local', cityHash64(TraceId))"
        ));
        assert!(all.contains("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/orrery/orrery_edges_1m_local', '{replica}', ComputedAt)"));
        // Every DDL statement runs on the whole cluster; data copies (migration 7) go through
        // Distributed tables instead.
        assert!(
            ddl.iter()
                .filter(|s| !s.starts_with("INSERT"))
                .all(|s| s.contains("ON CLUSTER orrery_cluster"))
        );
    }

    #[test]
    fn zero_retention_means_no_ttl() {
        let mut p = params(None);
        p.retention_days = 0;
        // But for the 10-second slots (v10): superseded by minute rows, kept a day regardless.
        let ddl = full_ddl(&p);
        let (slots, rest): (Vec<_>, Vec<_>) = ddl
            .iter()
            .partition(|s| s.contains("_10s") || s.contains("_slots"));
        assert!(!rest.iter().any(|s| s.contains("TTL")));
        assert_eq!(
            slots.iter().filter(|s| s.contains("TTL")).count(),
            4,
            "{slots:?}"
        );
        assert!(
            slots
                .iter()
                .all(|s| !s.contains("TTL") || s.contains("toIntervalDay(1)"))
        );
    }
}
