//! The checks' rule state and history (issue 16): `orrery_check_events`, one row per change of
//! a rule's state (its verdict, or whether it fires), written by the query service that
//! evaluates `--graph-rules` (`orrery-query`'s `checks::history`).
//!
//! The latest row of a rule is its shared state: every replica reads it before folding an
//! evaluation in, so replicas agree on since when a rule is violated (and so on `for:` and on
//! the alert's `startsAt`), a restart continues where the last process stopped, and a change
//! another replica already recorded is not recorded again. Rows are few (state changes, not
//! evaluations), so history is kept at least 90 days whatever the span retention.

use super::SchemaParams;

/// The table's name.
pub const CHECK_EVENTS: &str = "orrery_check_events";

/// Shortest time history is kept (days), when spans are kept for less.
pub const MIN_HISTORY_DAYS: u32 = 90;

/// The migration's statements: the events table (and its Distributed table on a cluster,
/// sharded by rule so a rule's history stays on one shard).
pub fn check_events(p: &SchemaParams) -> Vec<String> {
    let table = p.storage_name(CHECK_EVENTS);
    let ttl = if p.retention_days == 0 {
        String::new()
    } else {
        format!(
            "\nTTL toDateTime(At) + toIntervalDay({})",
            p.retention_days.max(MIN_HISTORY_DAYS)
        )
    };
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table}{oc} (
    Rule String,
    At DateTime64(3) CODEC(Delta, ZSTD(1)),
    Verdict LowCardinality(String),
    Firing UInt8,
    Since DateTime64(3),
    Reason String CODEC(ZSTD(1)),
    Subject String CODEC(ZSTD(1)),
    Requests UInt64,
    ErrorRate Float64,
    P95Ms Float64,
    P99Ms Float64,
    Replica LowCardinality(String)
) ENGINE = {engine}
PARTITION BY toYYYYMM(At)
ORDER BY (Rule, At){ttl}",
        db = p.database,
        oc = p.on_cluster(),
        engine = p.engine("ReplacingMergeTree", &table, None),
    )];
    out.extend(p.distributed(CHECK_EVENTS, "cityHash64(Rule)"));
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
    fn history_outlives_short_span_retention_and_is_sharded_by_rule_on_a_cluster() {
        let single = check_events(&params(None, 7)).join("\n");
        assert!(single.contains("CREATE TABLE IF NOT EXISTS orrery.orrery_check_events ("));
        assert!(single.contains("toIntervalDay(90)"));
        assert!(!check_events(&params(None, 0)).join("\n").contains("TTL"));
        assert!(
            check_events(&params(None, 365))
                .join("\n")
                .contains("toIntervalDay(365)")
        );
        let cluster = check_events(&params(Some("c"), 7)).join("\n");
        assert!(cluster.contains("orrery.orrery_check_events_local ON CLUSTER c"));
        assert!(cluster.contains("'orrery_check_events_local', cityHash64(Rule))"));
    }
}
