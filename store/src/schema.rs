//! The schema and its versioned migrations.
//!
//! Every statement is idempotent (`IF NOT EXISTS`), so a migration interrupted half way, or two
//! processes migrating at once, end in the same schema. Applied versions are recorded in
//! `orrery_schema_migrations` (a ReplacingMergeTree, so concurrent records collapse). An empty
//! database gets the current schema directly (the squashed baseline, `baseline.rs`); a
//! database at an older version runs the migrations it has not had; one at a newer version
//! than this build knows is refused.
//!
//! The spans table and its trace-id lookup are column-for-column the OpenTelemetry Collector
//! ClickHouse exporter's `otel_traces` and `otel_traces_trace_id_ts` (+ materialized view), so
//! Orrery can read tables that exporter fills and Grafana's ClickHouse data source reads ours.
//!
//! With a cluster name the same migrations create `*_local` ReplicatedMergeTree tables
//! `ON CLUSTER` and Distributed tables under the exporter's names, sharded by trace id so that
//! all spans of one trace (and thus the service-graph pairing) stay on one shard.

mod baseline;
mod checks;
mod days;
mod ddl;
mod exporter;
mod footprint;
mod migrations;
mod minutes;
mod runner;
mod slots;
pub use checks::CHECK_EVENTS;
pub use exporter::{SPAN_COLUMNS, resolve_span_columns, span_select, span_select_for};
pub use footprint::{CALLS_HOURS, CALLS_TTL_MERGE_S, SLOT_MARKER_HOURS, SLOT_ROWS_HOURS};
pub use minutes::{MINUTE_MARKER_HOURS, MINUTES_HOURS, minutes_from};

pub use baseline::{baseline_ddl, full_ddl};
pub use ddl::SchemaParams;
pub use migrations::{
    CALL_RESOURCE_KEYS, Fresh, Migration, latest_version, migrations, replay_ddl,
};
pub use runner::{MigrateReport, migrate, replay_to};

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
        assert!(all.contains("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/orrery/orrery_graph_edges_1m_local', '{replica}', ComputedAt)"));
        // Every DDL statement runs on the whole cluster, the replayed migrations' too; their
        // data copies (migration 7) go through Distributed tables instead.
        for ddl in [ddl, replay_ddl(&params(Some("orrery_cluster")))] {
            assert!(
                ddl.iter()
                    .filter(|s| !s.starts_with("INSERT"))
                    .all(|s| s.contains("ON CLUSTER orrery_cluster"))
            );
        }
    }

    #[test]
    fn zero_retention_means_no_ttl() {
        let mut p = params(None);
        p.retention_days = 0;
        // But for the 10-second slots (v10): superseded by minute rows, kept a day regardless.
        // And the call copy (v12; v11's 49 hours are folded into it): derived, kept 6 hours
        // regardless.
        let ddl = full_ddl(&p);
        let (calls, ddl): (Vec<_>, Vec<_>) = ddl
            .into_iter()
            .partition(|s| s.contains("orrery_span_calls MODIFY TTL"));
        assert_eq!(calls.len(), 1);
        assert!(calls[0].contains("toIntervalHour(6)"), "{calls:?}");
        let replayed = replay_ddl(&p);
        let ttls: Vec<_> = replayed
            .iter()
            .filter(|s| s.contains("orrery_span_calls MODIFY TTL"))
            .collect();
        assert!(ttls[0].contains("toIntervalHour(49)") && ttls[1].contains("toIntervalHour(6)"));
        // And the minute rollups (v14): derived, kept 26 hours (markers 25) regardless; v16
        // sets the same TTLs again, reading the computation's time through the writer bits.
        let (minutes, ddl): (Vec<_>, Vec<_>) = ddl.into_iter().partition(|s| {
            (s.contains("_1m ") || s.contains("orrery_graph_minutes ")) && s.contains("TTL")
        });
        assert_eq!(minutes.len(), 6, "{minutes:?}");
        let through_writer_bits = crate::computed_at::seconds_sql("ComputedAt");
        assert!(
            minutes[3..]
                .iter()
                .all(|s| s.contains(&through_writer_bits))
        );
        let (slots, rest): (Vec<_>, Vec<_>) = ddl
            .iter()
            .partition(|s| s.contains("_10s") || s.contains("_slots"));
        assert!(!rest.iter().any(|s| s.contains("TTL")));
        // v10's day, then v12's hours (rows 2, markers 1).
        let ttls: Vec<_> = slots.iter().filter(|s| s.contains("TTL")).collect();
        assert_eq!(ttls.len(), 8, "{slots:?}");
        assert!(ttls[..4].iter().all(|s| s.contains("toIntervalDay(1)")));
        assert!(ttls[4..].iter().all(|s| s.contains("toIntervalHour(")));
    }
}
