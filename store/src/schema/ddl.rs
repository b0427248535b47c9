//! The DDL builder: where a schema lives (database, retention, cluster) and the pieces of
//! table DDL that several migrations share (engines, TTLs, histogram rollup tables, markers).

use anyhow::{Result, bail};

use crate::ClickHouseArgs;

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

    pub(crate) fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(c) => format!(" ON CLUSTER {c}"),
            None => String::new(),
        }
    }

    /// Name of the table that holds the data: `<name>_local` on a cluster, else `<name>`.
    pub(crate) fn storage_name(&self, name: &str) -> String {
        if self.cluster.is_some() {
            format!("{name}_local")
        } else {
            name.to_string()
        }
    }

    /// Engine clause for a data table, replicated on a cluster.
    /// `version` is the ReplacingMergeTree version column, if any.
    pub(crate) fn engine(&self, kind: &str, table: &str, version: Option<&str>) -> String {
        let version = version.map(|v| format!(", {v}")).unwrap_or_default();
        match &self.cluster {
            Some(_) => format!(
                "Replicated{kind}('/clickhouse/tables/{{shard}}/{}/{table}', '{{replica}}'{version})",
                self.database
            ),
            None => format!("{kind}({})", version.trim_start_matches(", ")),
        }
    }

    /// `, <setting>` to append to a CREATE's `SETTINGS` list when `dedup` and on a single node:
    /// the insert-deduplication window migrations 3 and 8 set by `ALTER` on released tables,
    /// which the baseline puts in the CREATE directly. Replicated tables deduplicate anyway.
    pub(crate) fn dedup_setting(&self, dedup: bool) -> String {
        if dedup && self.cluster.is_none() {
            format!(", {DEDUP_WINDOW}")
        } else {
            String::new()
        }
    }

    pub(crate) fn ttl(&self, column_expr: &str) -> String {
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
    pub(crate) fn distributed(&self, name: &str, sharding_key: &str) -> Vec<String> {
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

/// A non-replicated MergeTree honours `insert_deduplication_token` only within this window (0 by
/// default): the collector's retried batches, and the views' blocks made from them, must be
/// dropped as repeats (migrations 3 and 8).
pub(crate) const DEDUP_WINDOW: &str = "non_replicated_deduplication_window = 10000";

pub(crate) fn check_identifier(what: &str, value: &str) -> Result<()> {
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

/// A table of minute markers (the rollup's: latest computation, span and data-quality counts).
pub(crate) fn minute_markers_ddl(p: &SchemaParams, name: &str) -> String {
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
pub(crate) fn hour_markers_ddl(p: &SchemaParams, name: &str) -> String {
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
pub(crate) fn histogram_value_columns_ddl() -> String {
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
pub(crate) fn histogram_table_ddl(
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
pub(crate) const EDGE_KEYS: &[&str] = &[
    "Caller",
    "Callee",
    "CallerRegion",
    "CalleeRegion",
    "CalleeKind",
];

/// Edge and node rollup tables of schema v6 at one granularity (`Minute`/`1m`, `Hour`/`1h`).
pub(crate) fn histogram_rollup_tables(p: &SchemaParams, time: &str, suffix: &str) -> Vec<String> {
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
