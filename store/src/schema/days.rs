//! Schema v13: day rollups — one row per edge (and node) per whole UTC day, merged from the
//! hour rows of a day whose 24 hours are rolled up and current, so a month-long window reads
//! ~30 rows per edge instead of ~720 (`orrery_query::rollup` `days.rs`).
//!
//! Same shape and codecs as the hour tables (v6 + v12): edges per region pair
//! (`orrery_graph_edges_1d`), edges without the region split (`orrery_graph_services_1d`, what
//! the default service-level map reads), nodes (`orrery_graph_nodes_1d`), and a marker per day
//! (`orrery_graph_days`: `HoursVersion`, the sum of the hour markers' `MinutesVersion` the day
//! was merged from). A reader takes a day whole only while every one of its hours is current
//! and their versions still add up to the marker's — the hour markers' own rule one level up.

use super::SchemaParams;
use super::ddl::{EDGE_KEYS, histogram_table_ddl};
use super::footprint::rollup_codecs;

/// The key columns of a node rollup table.
const NODE_KEYS: &[&str] = &["Service", "Region", "Instance"];

pub(super) fn v13_day_rollups(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let tables: [(&str, &[&str], &str, &str); 3] = [
        (
            "orrery_graph_edges_1d",
            EDGE_KEYS,
            "Day, Caller, Callee, CallerRegion, CalleeRegion, CalleeKind",
            "cityHash64(Caller, Callee)",
        ),
        (
            "orrery_graph_services_1d",
            EDGE_KEYS,
            "Day, Caller, Callee, CalleeKind",
            "cityHash64(Caller, Callee)",
        ),
        (
            "orrery_graph_nodes_1d",
            NODE_KEYS,
            "Day, Service, Region, Instance",
            "cityHash64(Service)",
        ),
    ];
    let mut out = Vec::new();
    for (name, keys, order, shard) in tables {
        out.push(histogram_table_ddl(p, name, "Day", keys, order));
        // The hour tables' codecs (v12 set them by ALTER; a new table gets them the same way,
        // so both paths describe the columns identically).
        out.push(format!(
            "ALTER TABLE {db}.{}{oc} {}",
            p.storage_name(name),
            rollup_codecs(keys)
        ));
        out.extend(p.distributed(name, shard));
    }
    let markers = p.storage_name("orrery_graph_days");
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.{markers}{oc} (
    Day DateTime CODEC(Delta, ZSTD(1)),
    ComputedAt UInt64,
    HoursVersion UInt64
) ENGINE = {engine}
PARTITION BY toYYYYMM(Day)
ORDER BY Day{ttl}",
        engine = p.engine("ReplacingMergeTree", &markers, Some("ComputedAt")),
        ttl = p.ttl("Day"),
    ));
    out.extend(p.distributed("orrery_graph_days", "toUnixTimestamp(Day)"));
    out
}

/// Schema v15: the day marker records the span count its rows were made from — of the day and
/// the hour either side (`Spans`, −1 on markers written before v15). A reader then decides a
/// day by one marker and one count (a count only grows, so an equal count means no span
/// arrived in the day or next to it since it was merged), instead of by its 24 hour markers;
/// the neighbour hours are in the count because a late span there changes the day's first or
/// last minute's calls (the minute rule's neighbours).
pub(super) fn v15_day_spans(p: &SchemaParams) -> Vec<String> {
    let db = &p.database;
    let oc = p.on_cluster();
    let mut out = vec![format!(
        "ALTER TABLE {db}.{}{oc} ADD COLUMN IF NOT EXISTS Spans Int64 DEFAULT -1",
        p.storage_name("orrery_graph_days")
    )];
    if p.cluster.is_some() {
        // The Distributed table in front has the columns it was created with.
        out.push(format!(
            "ALTER TABLE {db}.orrery_graph_days{oc} ADD COLUMN IF NOT EXISTS Spans Int64 DEFAULT -1"
        ));
    }
    out
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
    fn day_tables_keep_the_retention_and_the_hour_tables_codecs() {
        let all = v13_day_rollups(&params(None, 30));
        let creates: Vec<&String> = all.iter().filter(|s| s.starts_with("CREATE")).collect();
        assert_eq!(creates.len(), 4);
        for s in &creates {
            assert!(s.contains("TTL Day + toIntervalDay(30)"), "{s}");
        }
        let edges = all
            .iter()
            .find(|s| s.starts_with("ALTER TABLE orrery.orrery_graph_edges_1d "))
            .unwrap();
        assert!(edges.contains("MODIFY COLUMN IF EXISTS H63 CODEC(T64, ZSTD(3))"));
        assert!(edges.contains("MODIFY COLUMN IF EXISTS CalleeKind CODEC(ZSTD(3))"));
        for s in v13_day_rollups(&params(Some("c1"), 7)) {
            assert!(s.contains(" ON CLUSTER c1"), "{s}");
        }
        assert!(
            !v13_day_rollups(&params(None, 0))
                .iter()
                .any(|s| s.contains("TTL"))
        );
    }

    #[test]
    fn day_markers_gain_a_span_count_on_the_local_and_the_distributed_table() {
        assert_eq!(
            v15_day_spans(&params(None, 7)),
            vec![
                "ALTER TABLE orrery.orrery_graph_days ADD COLUMN IF NOT EXISTS Spans Int64 DEFAULT -1"
            ]
        );
        let c = v15_day_spans(&params(Some("c1"), 7));
        assert!(c[0].starts_with("ALTER TABLE orrery.orrery_graph_days_local ON CLUSTER c1 ADD"));
        assert!(c[1].starts_with("ALTER TABLE orrery.orrery_graph_days ON CLUSTER c1 ADD"));
    }
}
