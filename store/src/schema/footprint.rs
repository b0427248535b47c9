//! Schema v11: the derived call copy `orrery_span_calls` lives only as long as the rollup can
//! need it, not the whole retention.
//!
//! `orrery_span_calls` (v4) is a time-ordered copy of the columns the graph joins: ~21 bytes a
//! span, 15 of them two random 64-bit hashes that do not compress — as much as a third of
//! `otel_traces` itself. What reads it: the minute and slot rollups (closed minutes, and late
//! spans' minutes within `--graph-rollup-backfill`, 48 h), the live part of a graph (the last
//! seconds), and windows not yet rolled up. Edge detail's operations and exemplars read
//! `otel_traces` (pruned by the edge's two services, by the same rules: `graph_rules::
//! edge_spans_sql`), which keeps spans for the whole retention, and every graph number of an
//! older window comes from the rollups (same retention as the spans). So after [`CALLS_HOURS`]
//! hours a call row is dead weight.
//!
//! The TTL drops whole parts only (`ttl_only_drop_parts = 1` since v4, partitions are days), so
//! a row is never removed before its TTL (a day's part goes once its last row is
//! `CALLS_HOURS` old): rows live 49–73 hours. The rollup's horizon must stay inside that
//! (`query`'s test `the_call_copy_outlives_the_rollup_horizon` ties the two defaults).
//!
//! Existing parts are not rewritten on upgrade (`materialize_ttl_after_modify = 0`: rewriting
//! a week of calls would cost more than keeping them): they keep the retention TTL they were
//! written with, and take the new one when a merge rewrites them; new parts get it at once.

use super::SchemaParams;

/// Hours a call row is kept at least (and at most a day more: parts are dropped whole, per
/// day). Must exceed the rollup's backfill horizon (48 h) plus its parent lookback (10 min)
/// and delay (30 s): one hour of margin.
pub const CALLS_HOURS: u32 = 49;

/// The call copy's TTL in hours for these parameters: [`CALLS_HOURS`], or the retention when
/// that is shorter (a call row never outlives its span). Retention 0 (keep spans forever) still
/// expires calls.
pub fn calls_hours(p: &SchemaParams) -> u32 {
    match p.retention_days {
        0 => CALLS_HOURS,
        r => (r * 24).min(CALLS_HOURS),
    }
}

pub(super) fn v11_calls_ttl(p: &SchemaParams) -> Vec<String> {
    vec![format!(
        "ALTER TABLE {db}.{calls}{oc} MODIFY TTL toDateTime(Timestamp) + toIntervalHour({hours})
SETTINGS materialize_ttl_after_modify = 0",
        db = p.database,
        calls = p.storage_name("orrery_span_calls"),
        oc = p.on_cluster(),
        hours = calls_hours(p),
    )]
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
        assert_eq!(calls_hours(&params(None, 7)), 49);
        assert_eq!(calls_hours(&params(None, 1)), 24);
        assert_eq!(calls_hours(&params(None, 0)), 49);
        let local = v11_calls_ttl(&params(None, 30)).join("\n");
        assert!(local.starts_with("ALTER TABLE orrery.orrery_span_calls MODIFY TTL"));
        assert!(local.contains("toIntervalHour(49)"));
        let cluster = v11_calls_ttl(&params(Some("c1"), 30)).join("\n");
        assert!(
            cluster.starts_with("ALTER TABLE orrery.orrery_span_calls_local ON CLUSTER c1 "),
            "{cluster}"
        );
    }
}
